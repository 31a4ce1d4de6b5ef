"""Raw YUV files and the HDF5 shard format (the bottom layer: imports nothing of codecnn above).

Also the two rules every stage shares: metrics (PSNR and the one picture → sequence → QP
scorer, PsnrAccumulator) and atomic (files and directories renamed into place when whole).
The CTU grid (grid) and the input planes with their normalisation (shard: PLANES,
`normalise`) are defined here so that extraction, training and filtering share them.
"""
