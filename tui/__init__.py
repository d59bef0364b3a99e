"""cnnlab's Textual console. Torch is imported only inside the training worker."""
