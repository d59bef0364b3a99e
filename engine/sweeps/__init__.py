"""Many trials of one experiment as an Optuna study: the sweep folder and its results table
(folder), the study and its storage (study), planning and making a sweep (runner), the workers that
train its trials into ordinary run folders (worker), how a sweep is asked and started detached
(launch), orders to a whole sweep (control) and what a view reads of it live (view). Imports
training, the run folder and the experiment.
"""
