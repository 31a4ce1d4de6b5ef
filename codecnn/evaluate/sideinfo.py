"""Per-picture QP and depth planes for evaluation, from a manifest.

The QP plane is the picture's slice QP (exact for sequences coded without CU QP deltas, as
`codecnn encode` does) unless the manifest names a QP map. Maps in the two file forms that
need no parser are read here: "raw" (one 8-bit plane per frame at luma size / g, g ∈ {1, 4})
and "dump" (a 4:2:0 YUV per kind whose luma holds the value). VTM block-statistics traces
are turned into such planes by `codecnn extract`; eval reports them as unsupported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codecnn.codec.manifest import CodedSequence
from codecnn.errors import DataError
from codecnn.io.yuv import YuvFormat, open_yuv


class MapReader:
    """Reads one side-info map (QP or depth) of a coded sequence, frame by frame, [H, W]."""

    def __init__(self, seq: CodedSequence, kind: str, where: str) -> None:
        path = getattr(seq, f"{kind}_map")
        fmt = getattr(seq, f"{kind}_map_format") or {"kind": "raw", "granularity": 1}
        self.width, self.height = seq.width, seq.height
        self.where = where
        if not Path(path).is_file():
            raise DataError(f"{where}: {kind} map {path} is missing")
        form = fmt.get("kind")
        if form == "raw":
            g = int(fmt.get("granularity", 1))
            if g not in (1, 4):
                raise DataError(f"{where}: {kind} map granularity must be 1 or 4, got {g}")
            self.g = g
            yfmt = YuvFormat(-(-seq.width // g), -(-seq.height // g), 8, "400")
        elif form == "dump":
            self.g = 1
            yfmt = YuvFormat(seq.width, seq.height, int(fmt.get("bit_depth", seq.bit_depth)),
                             "420")
        else:
            raise DataError(f"{where}: {kind} map of kind {form!r} is not read by eval "
                            "(use raw or dump maps)")
        self.reader = open_yuv(path, yfmt)
        if len(self.reader) < seq.frames:
            raise DataError(f"{where}: {kind} map {path} has {len(self.reader)} frames, "
                            f"manifest says {seq.frames}")

    def __call__(self, k: int) -> np.ndarray:
        plane = np.asarray(self.reader.luma(k))
        if self.g > 1:
            plane = np.repeat(np.repeat(plane, self.g, 0), self.g, 1)
        return plane[: self.height, : self.width].astype(np.uint8)


def picture_qp(seq: CodedSequence, k: int) -> int:
    """Slice QP of picture k (output order), or the nominal QP where the manifest has none."""
    if seq.pictures and k < len(seq.pictures):
        return int(seq.pictures[k].slice_qp)
    return int(seq.qp)
