"""Runs in processes of their own: the world a rank lives in when torchrun started it (world),
cnnlab starting itself again under torchrun on several devices (torchrun), a run that outlives
the terminal that started it (detach), and a process whose terminal has hung up (terminal).
Imports compute, the run folder and the experiment.
"""
