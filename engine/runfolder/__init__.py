"""The run folder on disk, the contract every view reads: its files and what each may hold
(folder, json_files), the one trainer that holds it (lock), whether that trainer still lives
(liveness), the runs table read from many folders (table), and the control channel into a running
trainer (control). Imports only the experiment and engine.files, and never torch: `cnnlab runs` and
the console's runs screen list fast, and any view can follow a run it did not start.
"""
