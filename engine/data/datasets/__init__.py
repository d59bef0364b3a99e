"""The on-disk (and generated) dataset formats, one file each. `engine.data.splits` picks one by
`data.dataset`, caches what it decodes, and turns it into train / val / test splits."""
