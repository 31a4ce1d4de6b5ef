"""Decoded YUV → HDF5 shards of CTU patches (132×132 by default) with QP and depth planes.

`extract_yuv` (one reconstruction + original), `extract_manifests` (one shard per coded-sequence
manifest). The shard schema is codecnn.io.shard.
"""

from codecnn.extract.extraction import (
    ExtractOptions,
    extract_manifest,
    extract_manifests,
    extract_yuv,
    shard_name,
)
from codecnn.io.grid import CtuGrid, CtuPosition
from codecnn.io.shard_writer import COMPRESSIONS, DEFAULT_COMPRESSION

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
