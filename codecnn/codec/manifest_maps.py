"""The per-picture facts and side-info maps a manifest describes, read by one rule.

Extraction (`codecnn.extract.extraction`) and evaluation (`codecnn.evaluate.sequences`) both read
a coded sequence's pictures and its QP and depth maps here, so a shard and an evaluation of
the same manifest see the same POCs, slice QPs and maps. The map files themselves are read
by `codecnn.io.sideinfo` (raw planes, decoder dumps, VTM block statistics).

The rule: a manifest that lists its pictures (what `codecnn encode` writes) gives one POC,
slice type and slice QP per output picture, and must list one per frame. An All Intra
manifest without them (written by hand or another tool) stands for POC = picture index,
type I and slice QP = the nominal QP, exact for a fixed-QP All Intra code. Any other
configuration without them is refused: Random Access slice QPs follow the GOP hierarchy, so
the nominal QP would be wrong for most pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codecnn.codec.manifest import CodedSequence
from codecnn.errors import DataError
from codecnn.io.sideinfo import ConstantMap, SideMap, open_map


@dataclass(frozen=True)
class SequencePictures:
    """POC, slice QP and slice type of each output picture of a coded sequence."""

    pocs: list[int]
    slice_qps: list[int]
    slice_types: list[str]


def sequence_pictures(seq: CodedSequence, where: str = "manifest",
                      frames: int | None = None) -> SequencePictures:
    """The pictures of `seq` by the rule in the module docstring; `frames` (default
    seq.frames) is how many the reconstruction holds. DataError naming `where` otherwise."""
    n = seq.frames if frames is None else frames
    if seq.pictures:
        if len(seq.pictures) != n:
            raise DataError(f"{where}: manifest lists {len(seq.pictures)} pictures for {n} "
                            "frames")
        return SequencePictures([p.poc for p in seq.pictures],
                                [p.slice_qp for p in seq.pictures],
                                [p.slice_type for p in seq.pictures])
    if seq.config == "ai":
        return SequencePictures(list(range(n)), [seq.qp] * n, ["I"] * n)
    raise DataError(f"{where}: manifest has no per-picture slice QPs ({seq.config} config)")


def open_sequence_map(seq: CodedSequence, kind: str, where: str = "manifest",
                      pictures: SequencePictures | None = None) -> SideMap | None:
    """The QP (`kind="qp"`) or depth map of `seq`; `.frame(k)` is uint8 [H, W].

    The file the manifest names, read over its pictures' POCs; without one, QP is each
    picture's slice QP (a ConstantMap) and depth is None (no depth, never zeros).
    """
    pictures = pictures or sequence_pictures(seq, where)
    path = getattr(seq, f"{kind}_map")
    if not path:
        if kind == "qp":
            return ConstantMap(pictures.slice_qps, seq.width, seq.height, "qp")
        return None
    if not Path(path).is_file():
        raise DataError(f"{where}: {kind} map {path} is missing")
    return open_map(path, getattr(seq, f"{kind}_map_format"), kind, seq.width, seq.height,
                    pictures.pocs, yuv_bit_depth=seq.bit_depth)


def picture_qp(seq: CodedSequence, k: int) -> int:
    """Slice QP of output picture k by the same rule."""
    return int(sequence_pictures(seq).slice_qps[k])
