"""Per-picture QP and depth planes for evaluation, from a manifest.

The QP plane is the picture's slice QP (exact for sequences coded without CU QP deltas, as
`codecnn encode` does) unless the manifest names a QP map. Maps are read by the same readers
as extraction (`codecnn.io.sideinfo`: raw planes, decoder dumps, VTM block statistics).
"""

from __future__ import annotations

from pathlib import Path

from codecnn.codec.manifest import CodedSequence
from codecnn.errors import DataError
from codecnn.io.sideinfo import SideMap, open_map


def open_sequence_map(seq: CodedSequence, kind: str, where: str) -> SideMap:
    """The QP (`kind="qp"`) or depth map a manifest names; `.frame(k)` is uint8 [H, W]."""
    path = getattr(seq, f"{kind}_map")
    if not path or not Path(path).is_file():
        raise DataError(f"{where}: {kind} map {path} is missing")
    pocs = [p.poc for p in seq.pictures] if seq.pictures else list(range(seq.frames))
    return open_map(path, getattr(seq, f"{kind}_map_format"), kind, seq.width, seq.height,
                    pocs, yuv_bit_depth=seq.bit_depth)


def picture_qp(seq: CodedSequence, k: int) -> int:
    """Slice QP of picture k (output order), or the nominal QP where the manifest has none."""
    if seq.pictures and k < len(seq.pictures):
        return int(seq.pictures[k].slice_qp)
    return int(seq.qp)
