"""Raw YUV files and the HDF5 shard format (the bottom layer: imports nothing of codecnn above)."""
