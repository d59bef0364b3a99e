"""Where and how a run computes: the device, precision and memory layout (device), what that device
is doing (device_stats), this machine's name and per-machine folders (machine), the cores a training
may use beside others (threads, cores) and the garbage collector kept off the loop's heap
(frozen_heap). Imports the experiment and engine.files; knows nothing of training or run folders.
"""
