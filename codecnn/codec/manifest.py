"""The coded-sequence manifest: the JSON `encode` writes and `extract`/`eval` read.

One manifest per (sequence, nominal QP). Paths inside it are stored relative to the
manifest's own directory when they lie at most two levels above it (the original at
OUT/<source>/original.yuv is `../../original.yuv`), so an output folder can be moved whole;
`load_manifest` returns them absolute.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from codecnn.errors import DataError, malformed_input
from codecnn.io.atomic import write_json_atomic
from codecnn.io.paths import relative_within

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PictureInfo:
    """One coded picture, in output order.

    poc: picture order count; slice_type: "I", "P" or "B"; slice_qp: SliceQpY from the
    headers (26 + pps_init_qp_minus26 + ph/sh_qp_delta); bits: size of its access unit in
    bits (None where unknown).
    """

    poc: int
    slice_type: str
    slice_qp: int
    bits: int | None = None


@dataclass(frozen=True)
class CodedSequence:
    """A sequence coded at one nominal QP and its decoded reconstruction.

    original/reconstruction are raw YUV files of `width`×`height`, `bit_depth` (10 for
    what `encode` writes), `chroma` ("420"); both hold `frames` pictures in output order.
    depth_map/qp_map, when not None, are side-info files described by depth_map_format /
    qp_map_format (e.g. {"kind": "raw", "granularity": 1}; see codecnn.extract).
    """

    source: str
    width: int
    height: int
    bit_depth: int
    fps: float
    frames: int
    codec: str  # "vvc" or "hevc"
    config: str  # "ai" (All Intra) or "ra" (Random Access)
    qp: int  # nominal QP
    original: str
    reconstruction: str
    bitstream: str
    bitstream_bits: int
    pictures: list[PictureInfo] = field(default_factory=list)
    chroma: str = "420"
    encoder_settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    depth_map: str | None = None
    depth_map_format: dict[str, Any] | None = None
    qp_map: str | None = None
    qp_map_format: dict[str, Any] | None = None
    manifest_version: int = MANIFEST_VERSION

    @property
    def bitrate_kbps(self) -> float:
        """Bitrate of the real bitstream in kbit/s at the sequence's frame rate."""
        return self.bitstream_bits * self.fps / self.frames / 1000.0

    @property
    def slice_qps(self) -> list[int]:
        return [p.slice_qp for p in self.pictures]


_PATH_FIELDS = ("original", "reconstruction", "bitstream", "depth_map", "qp_map")


def _relative(path: str | None, base: Path) -> str | None:
    """`path` relative to the manifest's folder when it lies within two levels above it
    (OUT/<source>/original.yuv from OUT/<source>/vvc-ai/qp32/), so a coded folder can be copied
    elsewhere whole; absolute otherwise."""
    return None if path is None else relative_within(path, base, levels=2)


def save_manifest(seq: CodedSequence, path: str | os.PathLike) -> Path:
    """Write the manifest atomically (temporary name, then rename)."""
    path = Path(path)
    data = asdict(seq)
    for key in _PATH_FIELDS:
        data[key] = _relative(data[key], path.parent)
    return write_json_atomic(path, data)


@malformed_input(lambda path, *_, **__: f"{path}: manifest")
def load_manifest(path: str | os.PathLike, check_files: bool = True) -> CodedSequence:
    """Read a manifest; paths come back absolute. DataError naming the file when it is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a JSON manifest ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON manifest (top level is not an object)")
    known = {f.name for f in fields(CodedSequence)}
    required = {
        f.name
        for f in fields(CodedSequence)
        if f.default is MISSING and f.default_factory is MISSING
    }
    missing = sorted(required - data.keys())
    if missing:
        raise DataError(f"{path}: manifest lacks {', '.join(missing)}")
    version = data.get("manifest_version", MANIFEST_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or \
            not 1 <= version <= MANIFEST_VERSION:
        raise DataError(f"{path}: manifest_version {version!r} is not one this codecnn reads "
                        f"(1..{MANIFEST_VERSION}); a newer codecnn wrote it?")
    data = {k: v for k, v in data.items() if k in known}
    for key in _PATH_FIELDS:
        if data.get(key) is not None:
            p = Path(data[key])
            data[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    try:
        data["pictures"] = [PictureInfo(**p) for p in data.get("pictures") or []]
        seq = CodedSequence(**data)
    except (TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{path}: malformed manifest ({e})") from None
    if check_files:
        for key in ("original", "reconstruction"):
            if not Path(getattr(seq, key)).is_file():
                raise DataError(f"{path}: {key} file {getattr(seq, key)} is missing")
    return seq
