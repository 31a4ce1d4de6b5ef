"""Decoded YUV → HDF5 shards of CTU patches (132×132 by default) with QP and depth planes.

`extract_yuv` (one reconstruction + original), `extract_manifests` (one shard per coded-sequence
manifest). The shard schema is codecnn.io.shard.
"""

from codecnn.extract.run import (
    ExtractOptions,
    extract_manifest,
    extract_manifests,
    extract_yuv,
    shard_name,
)
from codecnn.extract.shard_writer import COMPRESSIONS, DEFAULT_COMPRESSION
from codecnn.io.grid import CtuGrid, CtuPosition

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "CtuGrid",
    "CtuPosition",
    "ExtractOptions",
    "extract_manifest",
    "extract_manifests",
    "extract_yuv",
    "shard_name",
]
