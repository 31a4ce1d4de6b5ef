"""Per-sample QP and CU-depth maps, from the files reference decoders actually write.

Every reader gives `frame(k) -> uint8 [H, W]` for output picture k (k = 0 .. frames-1) and
checks, when it is opened, the map's size, its frame count and its value range (QP 0..63,
depth 0..12); errors name the file and the frame. Formats (`fmt` dicts, as in manifests):

- {"kind": "vtm-trace"}: VTM block statistics (`# VTMBMS Block Statistics`), either
  `BlockStat: POC p @(x,y) [wxh] Name=v` or the CSV form `BlockStat;p;x;y;w;h;Name;v`
  (suffix `.vtmbmsstats` as YUView and VTM name them). Every shape VTM prints is read
  (vectors, lines, affine vectors, GEO polygons, the CSV build's trailing `;`, the
  `*_Chroma` statistics of dual trees) and any other `BlockStat` line is refused with its
  line number. Each CU rectangle is painted with its value. Depth is `Depth` (VTM's total
  split depth) or, where a trace has no `Depth`, `QT_Depth + MT_Depth`; QP is `QP`.
  Pictures are found by POC, so a trace written in decoding order works.
- {"kind": "dump", "bit_depth": 8|10}: a 4:2:0 YUV file, one frame per picture, whose luma
  plane holds the value (NNVC-style `_qp.yuv` dumps).
- {"kind": "raw", "granularity": 1|4}: one uint8 plane per picture of ceil(H/g)×ceil(W/g)
  values; g = 4 is expanded to samples by repetition.
- A constant per picture (the slice QP of each picture, or one QP for all): `ConstantMap`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from codecnn.errors import DataError, YuvFormatError
from codecnn.io.yuv import YuvFormat, YuvReader

RANGES = {"qp": (0, 63), "depth": (0, 12)}
KINDS = ("raw", "dump", "vtm-trace")


class SideMap(Protocol):
    """What the shard writer needs from a map: one uint8 [H, W] plane per output picture."""

    path: Path | None

    def frame(self, k: int) -> np.ndarray: ...


def _check_range(values: np.ndarray, what: str, where: str) -> None:
    lo, hi = RANGES[what]
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise DataError(f"{where}: {what} value {bad} out of range {lo}..{hi}")


class ConstantMap:
    """One value per picture (e.g. the slice QP): frame(k) is filled with values[k]."""

    path = None

    def __init__(self, values: Sequence[int], width: int, height: int, what: str = "qp") -> None:
        for k, v in enumerate(values):
            _check_range(np.array([v]), what, f"picture {k}")
        self.values = [int(v) for v in values]
        self.shape = (height, width)

    def frame(self, k: int) -> np.ndarray:
        return np.full(self.shape, self.values[k], np.uint8)


class RawPlaneMap:
    """uint8 planes of ceil(H/g)×ceil(W/g), one per picture, expanded to H×W samples."""

    def __init__(self, path: str | os.PathLike, what: str, width: int, height: int, frames: int,
                 granularity: int = 1) -> None:
        self.path = Path(path)
        if granularity not in (1, 4):
            raise DataError(f"{self.path}: raw map granularity must be 1 or 4, got {granularity}")
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such {what} map")
        self.g = granularity
        self.shape = (height, width)
        rows, cols = -(-height // granularity), -(-width // granularity)
        nbytes = self.path.stat().st_size
        if nbytes != frames * rows * cols:
            raise DataError(
                f"{self.path}: {what} map is {nbytes} bytes, expected {frames} frames of "
                f"{cols}x{rows} (granularity {granularity}) = {frames * rows * cols} bytes"
            )
        self._mm = np.memmap(self.path, np.uint8, "r", shape=(frames, rows, cols))
        for k in range(frames):
            _check_range(self._mm[k], what, f"{self.path}: frame {k}")

    def frame(self, k: int) -> np.ndarray:
        plane = np.asarray(self._mm[k])
        if self.g > 1:
            plane = np.repeat(np.repeat(plane, self.g, axis=0), self.g, axis=1)
        return np.ascontiguousarray(plane[: self.shape[0], : self.shape[1]])


class DumpPlaneMap:
    """The luma plane of a 4:2:0 YUV dump (8 or 10 bit) holds the value per sample."""

    def __init__(self, path: str | os.PathLike, what: str, width: int, height: int, frames: int,
                 bit_depth: int = 10) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such {what} map")
        try:
            self._yuv = YuvReader(self.path, YuvFormat(width, height, bit_depth, "420"))
        except YuvFormatError as e:
            raise DataError(f"{what} dump: {e}") from None
        if len(self._yuv) != frames:
            raise DataError(
                f"{self.path}: {what} dump has {len(self._yuv)} frames of {width}x{height} "
                f"{bit_depth}-bit 4:2:0, expected {frames}"
            )
        for k in range(frames):
            _check_range(self._yuv.luma(k), what, f"{self.path}: frame {k}")

    def frame(self, k: int) -> np.ndarray:
        return self._yuv.luma(k).astype(np.uint8)


# The shapes VTM's block-statistics tracing prints (source/Lib/CommonLib/
# dtrace_blockstatistics.cpp), as text or, in a BLOCK_STATS_AS_CSV build, as CSV:
#   BlockStat: POC %d @(%4d,%4d) [%2dx%2d] NAME=%d              a scalar on a rectangle
#   BlockStat: POC %d @(...) [...] NAME={%4d,%4d}                a vector (MVs, 2 values)
#   ... NAME={%4d,%4d,%4d,%4d} / {6 values}                      a line / affine vectors
#   BlockStat: POC %d @[(x, y)--(x, y)--(x, y)--] NAME=%d|{v,v}   a GEO polygon (3-5 points)
#   BlockStat;%d;%4d;%4d;%2d;%2d;NAME;%d[;%4d ...][;]            CSV: the same, `;`-separated
#   BlockStat;%d;x;y;x;y;x;y;[...;]NAME;%d[;%d]                  CSV polygon (6-10 numbers)
# `*_Chroma` statistics of dual trees (Depth_Chroma, QP_Chroma, ...) are written in luma
# coordinates (chroma position and size × 2), in the same shapes.
_TEXT_RE = re.compile(
    r"^BlockStat:\s*POC\s+(?P<poc>-?\d+)\s*@"
    r"(?:\(\s*(?P<x>\d+)\s*,\s*(?P<y>\d+)\s*\)\s*\[\s*(?P<w>\d+)\s*x\s*(?P<h>\d+)\s*\]"
    r"|\[(?P<poly>(?:\s*\(\s*-?\d+\s*,\s*-?\d+\s*\)\s*--){3,5})\s*\])"
    r"\s*(?P<name>[A-Za-z_]\w*)\s*=\s*"
    r"(?:(?P<v>-?\d+)|\{(?P<vec>\s*-?\d+(?:\s*,\s*-?\d+){1,5}\s*)\})\s*$"
)
_NAME_RE = re.compile(r"^[A-Za-z_]\w*$")
_INT_RE = re.compile(r"^\s*-?\d+\s*$")
_VECTOR_SIZES = (2, 4, 6)  # vector, line, affine vectors
_UNSET = -(1 << 20)  # no CU painted here yet
_NAMES = {"qp": ("QP",), "depth": ("Depth", "QT_Depth", "MT_Depth")}


def parse_blockstat_line(line: str) -> tuple[int, tuple[int, int, int, int] | None, str,
                                              tuple[int, ...]] | None:
    """One `BlockStat` line in any shape VTM prints → (poc, (x, y, w, h) or None for a
    polygon, name, values); None when the line is not one of them."""
    line = line.strip()
    if line.startswith("BlockStat:"):
        m = _TEXT_RE.match(line)
        if m is None:
            return None
        if m.group("vec") is not None:
            values = tuple(int(v) for v in m.group("vec").split(","))
            if len(values) not in _VECTOR_SIZES:
                return None
        else:
            values = (int(m.group("v")),)
        rect = None if m.group("poly") is not None else tuple(
            int(m.group(k)) for k in ("x", "y", "w", "h"))
        return int(m.group("poc")), rect, m.group("name"), values
    if not line.startswith("BlockStat;"):
        return None
    fields = line.split(";")[1:]
    if fields and fields[-1].strip() == "":  # the line statistics' trailing `;`
        fields = fields[:-1]
    names = [i for i, f in enumerate(fields) if _NAME_RE.match(f.strip())]
    if len(names) != 1 or not all(_INT_RE.match(f) for i, f in enumerate(fields)
                                  if i != names[0]):
        return None
    i = names[0]
    numbers = [int(f) for f in fields[1:i]]
    values = tuple(int(f) for f in fields[i + 1:])
    if not fields[0].strip() or len(values) not in (1, *_VECTOR_SIZES):
        return None
    if len(numbers) == 4:
        rect = tuple(numbers)
        if min(rect) < 0:
            return None
    elif len(numbers) in (6, 8, 10):  # a polygon of 3-5 points
        rect = None
    else:
        return None
    return int(fields[0]), rect, fields[i].strip(), values


def parse_vtm_trace(path: str | os.PathLike, names: Sequence[str]) -> dict[int, dict[str, list]]:
    """Scalar rectangle statistics `names` of a VTM block-statistics trace:
    {poc: {name: [(x, y, w, h, v)]}}.

    Every `BlockStat` line must be one of the shapes VTM prints (text or CSV; scalars,
    vectors, lines, affine vectors, GEO polygons; see above): any other is an error naming
    its line number. Lines of other statistics are read and left out; header comments and
    the decoder's other output are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such trace")
    wanted = set(names)
    out: dict[int, dict[str, list]] = {}
    seen_stat = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.startswith("BlockStat"):
                continue
            seen_stat = True
            parsed = parse_blockstat_line(line)
            if parsed is None:
                raise DataError(f"{path}:{number}: malformed BlockStat line "
                                f"{line.strip()[:80]!r}")
            poc, rect, name, values = parsed
            if name not in wanted:
                continue
            if rect is None or len(values) != 1:
                raise DataError(f"{path}:{number}: {name} is not a scalar on a rectangle")
            out.setdefault(poc, {}).setdefault(name, []).append((*rect, values[0]))
    if not seen_stat:
        raise DataError(f"{path}: not a VTM block-statistics trace (no BlockStat lines)")
    return out


def _paint(blocks: list | None, width: int, height: int, where: str, name: str) -> np.ndarray:
    """int64 [H, W]: each (x, y, w, h, v) rectangle painted with v, later ones on top."""
    if not blocks:
        raise DataError(f"{where}: no {name} statistics")
    plane = np.full((height, width), _UNSET, np.int64)  # any traced value fits
    # VTM traces blocks in coded-picture coordinates: a picture padded by a conformance
    # window (coded size rounded up to 8) has CUs in the padding; they are clipped away.
    coded_w, coded_h = -(-width // 8) * 8, -(-height // 8) * 8
    for x, y, w, h, v in blocks:
        if w < 1 or h < 1 or x + w > coded_w or y + h > coded_h:
            raise DataError(
                f"{where}: {name} block {w}x{h} at ({x},{y}) reaches outside the "
                f"{width}x{height} picture (coded {coded_w}x{coded_h})"
            )
        plane[y : y + h, x : x + w] = v  # the padding rows/columns are clipped away
    holes = int((plane == _UNSET).sum())
    if holes:
        raise DataError(f"{where}: {name} blocks leave {holes} samples uncovered")
    return plane


def vtm_trace_planes(path: str | os.PathLike, width: int, height: int, pocs: Sequence[int],
                     whats: Sequence[str] = ("depth", "qp")) -> dict[str, list[np.ndarray]]:
    """Depth and/or QP planes (uint8 [H, W] per output picture k, found by `pocs[k]`) from
    one reading of a VTM block-statistics trace.

    Depth is VTM's `Depth` (the CU's QT + MTT depth, counted from the root of its coding
    tree) or, where a trace has none, `QT_Depth + MT_Depth`; QP is `QP`, the CU's luma QP.
    """
    path = Path(path)
    if len(set(pocs)) != len(pocs):
        raise DataError(f"{path}: the sequence's POCs repeat ({list(pocs)[:8]}...): a trace "
                        "found by POC cannot tell its pictures apart")
    stats = parse_vtm_trace(path, [n for w in whats for n in _NAMES[w]])
    extra = sorted(set(stats) - set(pocs))
    if extra:
        raise DataError(
            f"{path}: trace has POC {extra[0]} but the sequence has {len(pocs)} "
            f"pictures (POCs {min(pocs)}..{max(pocs)})"
        )
    out: dict[str, list[np.ndarray]] = {w: [] for w in whats}
    for k, poc in enumerate(pocs):
        where = f"{path}: frame {k} (POC {poc})"
        per = stats.get(poc, {})
        for what in whats:
            if what == "qp":
                plane = _paint(per.get("QP"), width, height, where, "QP")
            elif "Depth" in per:
                plane = _paint(per["Depth"], width, height, where, "Depth")
            elif "QT_Depth" in per and "MT_Depth" in per:
                plane = (_paint(per["QT_Depth"], width, height, where, "QT_Depth")
                         + _paint(per["MT_Depth"], width, height, where, "MT_Depth"))
            else:
                raise DataError(f"{where}: no Depth (or QT_Depth and MT_Depth) statistics")
            _check_range(plane, what, where)
            out[what].append(plane.astype(np.uint8))
    return out


class VtmTraceMap:
    """QP or depth painted from the CU rectangles of a VTM block-statistics trace."""

    def __init__(self, path: str | os.PathLike, what: str, width: int, height: int,
                 pocs: Sequence[int]) -> None:
        self.path = Path(path)
        self.frames: list[np.ndarray] = vtm_trace_planes(self.path, width, height, pocs,
                                                         (what,))[what]

    def frame(self, k: int) -> np.ndarray:
        return self.frames[k]


TRACE_SUFFIXES = (".vtmbmsstats", ".txt", ".trace", ".csv", ".log")


def _looks_like_trace(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.startswith((b"# VTMBMS", b"BlockStat"))


def parse_map_format(text: str | None, path: str | os.PathLike,
                     yuv_bit_depth: int = 10) -> dict[str, Any]:
    """A CLI format word → format dict; without one, guess from the file name.

    Words: `raw` (granularity 1), `raw4`, `vtm-trace`, `dump` (at the sequence's bit depth),
    `dump8`, `dump10`. Guessing: .yuv → dump, .vtmbmsstats (YUView's and VTM's name) and
    .txt/.trace/.csv/.log → vtm-trace, any other file that begins like a VTM trace
    (`# VTMBMS` or `BlockStat`) → vtm-trace, else raw.
    """
    if text is None:
        suffix = Path(path).suffix.lower()
        if suffix == ".yuv":
            return {"kind": "dump", "bit_depth": yuv_bit_depth}
        if suffix in TRACE_SUFFIXES or _looks_like_trace(Path(path)):
            return {"kind": "vtm-trace"}
        return {"kind": "raw", "granularity": 1}
    words = {
        "raw": {"kind": "raw", "granularity": 1},
        "raw1": {"kind": "raw", "granularity": 1},
        "raw4": {"kind": "raw", "granularity": 4},
        "vtm-trace": {"kind": "vtm-trace"},
        "dump": {"kind": "dump", "bit_depth": yuv_bit_depth},
        "dump8": {"kind": "dump", "bit_depth": 8},
        "dump10": {"kind": "dump", "bit_depth": 10},
    }
    if text not in words:
        raise DataError(f"{path}: unknown map format {text!r} (use {', '.join(words)})")
    return dict(words[text])


def open_map(path: str | os.PathLike, fmt: dict[str, Any] | None, what: str, width: int,
             height: int, pocs: Sequence[int], yuv_bit_depth: int = 10) -> SideMap:
    """Open a QP (`what="qp"`) or depth (`what="depth"`) map of `len(pocs)` pictures."""
    if what not in RANGES:
        raise ValueError(f"what must be 'qp' or 'depth', got {what!r}")
    fmt = dict(fmt) if fmt else parse_map_format(None, path, yuv_bit_depth)
    kind = fmt.get("kind")
    if kind == "raw":
        return RawPlaneMap(path, what, width, height, len(pocs), int(fmt.get("granularity", 1)))
    if kind == "dump":
        return DumpPlaneMap(path, what, width, height, len(pocs),
                            int(fmt.get("bit_depth", yuv_bit_depth)))
    if kind == "vtm-trace":
        return VtmTraceMap(path, what, width, height, pocs)
    raise DataError(f"{path}: unknown {what} map kind {kind!r} (use {', '.join(KINDS)})")
