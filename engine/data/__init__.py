"""Datasets in memory and on the device: the on-disk formats, one file each (datasets/), every
split held once as a uint8 tensor (splits), and augmentation of whole batches on the training device
(augment). Imports compute and the experiment; knows nothing of models or training.
"""
