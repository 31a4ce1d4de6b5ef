"""The HDF5 shard format: the one definition that `extract` writes and `datasets`,
`evaluate` and `analysis` read.

A shard holds N patches cut from one coded sequence at one nominal QP (or one job):

    rec    uint16 [N, P, P]   decoded luma, the CTU plus `border` samples of its neighbours
                              (P = ctu_size + 2·border, 132 by default); picture edges replicated
    orig   uint16 [N, C, C]   original luma of the CTU (C = ctu_size); target = orig − rec centre
    qp     uint8  [N, P, P]   per-sample luma QP
    depth  uint8  [N, P, P]   CU split depth (QT + MTT) — absent when unknown (has_depth=False)
    meta   META_DTYPE [N]     per patch: sequence, POC, CTU position, QPs, slice type, valid size

File attributes (ATTRS): format_version, bit_depth, ctu_size, border, has_depth, sequence,
nominal_qp, codec, config, source (JSON), settings (JSON), codecnn_version, width, height,
full_ctus_only, compression. The writer is codecnn.io.shard_writer, beside this module.

Samples keep the sequence's bit depth (0..1023 at 10 bit). CTUs cut by the right/bottom
picture edge keep their valid width/height in meta; outside that area rec/orig replicate the
edge and must not be scored. The patches are cut on codecnn.io.grid.CtuGrid, the grid that
filtering cuts its tiles on.

A network's input planes are named by PLANES (each stored as the dataset of that name) and
scaled by `normalise` (rec / peak, qp / 63, depth / 8): training, shard evaluation and
whole-picture filtering all call it, so none can scale an input differently.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError

FORMAT_VERSION = 1
REC, ORIG, QP, DEPTH, META = "rec", "orig", "qp", "depth", "meta"
REQUIRED_DATASETS = (REC, ORIG, QP, META)

META_DTYPE = np.dtype(
    [
        ("sequence", "S64"),  # sequence name (utf-8, at most 64 bytes)
        ("poc", "<i4"),  # picture order count (output order index)
        ("ctu_x", "<u2"),  # luma x of the CTU's top-left sample in the picture
        ("ctu_y", "<u2"),
        ("slice_qp", "u1"),  # SliceQpY of the picture, from the bitstream headers
        ("nominal_qp", "u1"),  # the QP the sequence was encoded at (22/27/32/37, …)
        ("slice_type", "S1"),  # b"I", b"P" or b"B"
        ("valid_w", "<u2"),  # CTU samples inside the picture (< ctu_size at right edge)
        ("valid_h", "<u2"),
    ]
)

# Attributes every shard carries (JSON-encoded where the value is a dict); the writer
# (codecnn.io.shard_writer) refuses to write a shard whose attributes differ from these.
ATTRS = (
    "format_version",
    "bit_depth",
    "ctu_size",
    "border",
    "has_depth",
    "sequence",
    "nominal_qp",
    "codec",
    "config",
    "source",
    "settings",
    "codecnn_version",
    "width",  # the picture's luma size
    "height",
    "full_ctus_only",  # edge CTUs left out
    "compression",  # codecnn.io.shard_writer.COMPRESSIONS
)

SHARD_SUFFIXES = (".h5", ".hdf5")

# The input planes a network may take, in their canonical order; each is the dataset of the
# same name. Divisors of the side planes: qp / 63 spans the VVC/HEVC QP range; depth / 8 keeps
# typical VVC depths (0..8) in [0, 1], deeper values (up to 12) stay finite. rec is divided by
# the peak of its bit depth.
PLANES = (REC, QP, DEPTH)
QP_SCALE = 63.0
DEPTH_SCALE = 8.0
SIDE_SCALE = {QP: QP_SCALE, DEPTH: DEPTH_SCALE}


def plane_scales(planes: tuple[str, ...] | list[str], peak: float) -> list[float]:
    """The divisor of each plane of `planes`: `peak` ((1 << bit_depth) - 1) for rec, 63 for
    qp, 8 for depth; DataError naming an unknown plane."""
    unknown = [p for p in planes if p not in PLANES]
    if unknown:
        raise DataError(f"unknown input plane {unknown[0]!r} (use {', '.join(PLANES)})")
    return [float(peak) if p == REC else SIDE_SCALE[p] for p in planes]


def normalise(x: Any, planes: tuple[str, ...] | list[str], peak: float, out: Any = None) -> Any:
    """The network input: float32 `x / scale` per plane, planes on axis -3.

    x: samples [..., len(planes), H, W] as stored (integers, or floats holding integers),
    a numpy array or a torch tensor (the result stays on its device). peak: (1 << bit_depth)
    - 1 of rec. out: optional float32 buffer of x's shape to write into (torch).
    The divisor is a float32 tensor, never a Python number: the same IEEE quotient on every
    device (CUDA turns a division by a scalar into a product with its reciprocal).
    """
    scales = plane_scales(tuple(planes), peak)
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / np.array(scales, np.float32).reshape(-1, 1, 1)
    import torch

    # Filled on the device: a tensor made from a list would be a host-to-device copy that
    # waits for the GPU each time.
    scale = torch.empty(len(scales), dtype=torch.float32, device=x.device)
    for j, value in enumerate(scales):
        scale[j] = value
    scale = scale.view(-1, 1, 1)
    return torch.div(x, scale, out=out)


def shard_paths(paths: str | os.PathLike | list[str | os.PathLike]) -> list[Path]:
    """Expand a shard file, a directory of shards or a list of either into sorted files."""
    items = paths if isinstance(paths, list | tuple) else [paths]
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in SHARD_SUFFIXES and q.is_file())
            if not found:
                raise DataError(f"{p}: directory holds no .h5 shards")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or directory")
    if not out:
        raise DataError("no shards given")
    return out


def open_shard(path: str | os.PathLike):
    """Open a shard read-only and check it is one; DataError naming the file otherwise.

    Imports hdf5plugin so shards compressed with its filters (Blosc/Zstd) read anywhere.
    """
    import h5py
    import hdf5plugin  # noqa: F401 - registers the compression filters

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e.__class__.__name__})") from None
    missing = [name for name in REQUIRED_DATASETS if name not in f]
    if missing or "bit_depth" not in f.attrs:
        f.close()
        what = f"datasets {', '.join(missing)}" if missing else "attribute bit_depth"
        raise DataError(f"{path}: not a codecnn shard (missing {what})")
    n = f[META].shape[0]
    for name in (REC, ORIG, QP, DEPTH):
        if name in f and f[name].shape[0] != n:
            f.close()
            raise DataError(f"{path}: dataset {name} has {f[name].shape[0]} rows, meta has {n}")
    if n:
        try:
            f[REC][0:1]  # one chunk: is its compression filter available here?
        except OSError as e:
            f.close()
            raise DataError(f"{path}: cannot decompress its patches ({str(e)[:80]}); the "
                            "Blosc filter comes from `pip install hdf5plugin` and "
                            "`import hdf5plugin`") from None
    return f


def read_meta(f, path: str | os.PathLike) -> np.ndarray:
    """The whole meta table of an open shard; DataError naming the file if it is unreadable."""
    try:
        return f[META][()]
    except OSError as e:
        raise DataError(f"{path}: cannot read meta ({e})") from None


def read_attrs(f) -> dict[str, Any]:
    """A shard's attributes as plain Python values (JSON attributes decoded)."""
    out: dict[str, Any] = {}
    for key, value in f.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if key in ("source", "settings") and isinstance(value, str):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[key] = value
    return out


def decode_name(raw: bytes | np.bytes_) -> str:
    return bytes(raw).decode("utf-8", errors="replace")
