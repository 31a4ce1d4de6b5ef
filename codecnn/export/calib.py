"""Real CTUs from HDF5 shards: for the ONNX-vs-PyTorch check and for calibrating int8/int16.

Patches are picked evenly over all patches of all shards (a pure function of the shard sizes
and `count`), so every QP and sequence the shards hold is represented and reruns pick the
same ones.
"""

from __future__ import annotations

import os

import numpy as np

from codecnn.errors import DataError
from codecnn.io.shard import DEPTH, QP, REC, open_shard, read_attrs, shard_paths

_DATASET = {"rec": REC, "qp": QP, "depth": DEPTH}


def read_patches(paths: list[str | os.PathLike], planes: tuple[str, ...], border: int,
                 count: int = 64) -> tuple[np.ndarray, int]:
    """(raw planes int32 [count', len(planes), 128 + 2·border, same], bit depth).

    Raw means not normalised: rec at its bit depth, QP 0..63, depth as stored. DataError
    naming the shard when a plane is missing, bit depths mix or the border is too small.
    """
    files = shard_paths(list(paths))
    sizes, bit_depth = [], None
    for p in files:
        with open_shard(p) as f:
            attrs = read_attrs(f)
            bd = int(attrs["bit_depth"])
            if bit_depth is not None and bd != bit_depth:
                raise DataError(f"{p}: {bd}-bit shard among {bit_depth}-bit shards")
            bit_depth = bd
            if int(attrs["border"]) < border:
                raise DataError(f"{p}: model needs a {border}-sample border, shard has "
                                f"{attrs['border']}")
            for name in planes:
                if _DATASET.get(name) not in f:
                    raise DataError(f"{p}: model uses the {name} plane but the shard has none")
            sizes.append(len(f[REC]))
    total = sum(sizes)
    if total == 0:
        raise DataError(f"{files[0]}: shards hold no patches")
    picks = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))
    out = []
    start = 0
    for p, n in zip(files, sizes, strict=True):
        mine = picks[(picks >= start) & (picks < start + n)] - start
        start += n
        if not len(mine):
            continue
        with open_shard(p) as f:
            crop = int(read_attrs(f)["border"]) - border
            stack = np.stack([f[_DATASET[name]][mine] for name in planes], 1).astype(np.int32)
        if crop:
            stack = stack[..., crop:-crop, crop:-crop]
        out.append(stack)
    return np.concatenate(out), int(bit_depth)
