"""Writing block statistics that YUView overlays on a decoded video (`.vtmbmsstats`).

The format is the text that VTM writes under block-statistics tracing and that YUView opens
as a statistics file (File → Open, `*.vtmbmsstats`). A header of `#` lines comes first; the
first line not starting with `#` ends it:

    # VTMBMS Block Statistics
    # Sequence size: [176x 144]
    # Block Statistic Type: Depth; Integer; [0, 3]
    # Block Statistic Type: CTU_on; Flag;
    BlockStat: POC 0 @(   0,   0) [64x64] Depth=0

One data line per rectangle and statistic: `@(x, y)` is the top-left luma sample, `[wxh]`
the size (the width directly followed by `x`, as YUView's pattern needs), and the value an
integer. YUView finds a picture's lines by their POC and reads them up to the next POC, so
all lines of a picture are written together; it shows the statistics of "POC" k on frame k
of the video it lies over, so callers pass the output picture index. An `Integer`
statistic's `[min, max]` is the range YUView's colour map spans; a `Flag` is 0 or 1. Values
that are not integers (a gain in dB) are stored scaled and say so in their name
(`CTU_gain_mdB`: thousandths of a dB).

`codecnn.io.sideinfo.parse_vtm_trace` reads these files back; `filter_vtm_trace` keeps a
few statistics of a trace VTM wrote (a fraction of its size, still a file YUView opens).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from codecnn.io.atomic import atomic_output

SUFFIX = ".vtmbmsstats"
KINDS = ("Integer", "Flag")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # what YUView's header pattern accepts as a name


@dataclass(frozen=True)
class StatType:
    """One scalar statistic: its name, "Integer" or "Flag", and an Integer's colour range."""

    name: str
    kind: str = "Integer"
    value_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"statistic name {self.name!r}: use letters, digits and _ only")
        if self.kind not in KINDS:
            raise ValueError(f"statistic kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "Integer" and self.value_range is None:
            raise ValueError(f"Integer statistic {self.name} needs a value_range")

    def header(self) -> str:
        if self.kind == "Flag":
            return f"# Block Statistic Type: {self.name}; Flag; "
        lo, hi = self.value_range
        return f"# Block Statistic Type: {self.name}; Integer; [{int(lo)}, {int(hi)}]"


class BlockStatsWriter:
    """Writes the header to an open text file, then one picture's rectangles at a time."""

    def __init__(self, f: TextIO, width: int, height: int, types: Sequence[StatType],
                 comments: Sequence[str] = ()) -> None:
        self.f, self.width, self.height = f, int(width), int(height)
        self.types = {t.name: t for t in types}
        if len(self.types) != len(types):
            raise ValueError("statistic names must be distinct")
        lines = ["# VTMBMS Block Statistics", f"# Sequence size: [{self.width}x {self.height}]"]
        lines += [t.header() for t in types]
        lines += ["# " + " ".join(c.split()) for c in comments]  # one line each
        f.write("\n".join(lines) + "\n")
        self._pocs: set[int] = set()

    def picture(self, poc: int, blocks: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Picture `poc` (>= 0, once each): blocks int [N, 4] of (x, y, w, h) inside the
        picture; values {name: int [N]}, one per block, for each declared statistic."""
        poc = int(poc)
        if poc < 0 or poc in self._pocs:
            raise ValueError(f"POC {poc}: negative or already written")
        self._pocs.add(poc)
        blocks = np.asarray(blocks, np.int64).reshape(-1, 4)
        if set(values) != set(self.types):
            raise ValueError(f"values for {sorted(values)}, declared {sorted(self.types)}")
        x, y, w, h = blocks.T
        if len(blocks) and ((x < 0) | (y < 0) | (w < 1) | (h < 1) | (x + w > self.width)
                            | (y + h > self.height)).any():
            raise ValueError(f"POC {poc}: a block lies outside the {self.width}x{self.height} "
                             "picture")
        out = []
        for name, t in self.types.items():
            v = np.asarray(values[name])
            integral = np.issubdtype(v.dtype, np.integer) or v.dtype == np.bool_
            if v.shape != (len(blocks),) or not integral:
                raise ValueError(f"{name}: need {len(blocks)} integer values, got {v.dtype} "
                                 f"{v.shape}")
            v = v.astype(np.int64)
            if t.kind == "Flag" and ((v < 0) | (v > 1)).any():
                raise ValueError(f"{name}: a Flag is 0 or 1")
            out += [f"BlockStat: POC {poc} @({bx:4d},{by:4d}) [{bw:2d}x{bh:2d}] {name}={bv}"
                    for bx, by, bw, bh, bv in zip(x.tolist(), y.tolist(), w.tolist(), h.tolist(),
                                                  v.tolist(), strict=True)]
        if out:
            self.f.write("\n".join(out) + "\n")


def write_block_stats(path: str | os.PathLike, width: int, height: int,
                      types: Sequence[StatType],
                      pictures: Iterable[tuple[int, np.ndarray, Mapping[str, np.ndarray]]],
                      comments: Sequence[str] = ()) -> Path:
    """Write a whole `.vtmbmsstats` file atomically: `pictures` yields (poc, blocks,
    values) as `BlockStatsWriter.picture` takes them. Returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="ascii") as f:
        w = BlockStatsWriter(f, width, height, types, comments)
        for poc, blocks, values in pictures:
            w.picture(poc, blocks, values)
    return path



def filter_vtm_trace(src: str | os.PathLike, dst: str | os.PathLike,
                     names: Iterable[str]) -> dict[str, set[int]]:
    """Copy the VTM trace `src` to `dst` (atomically) with its `#` header but only the
    statistics `names`, both in the header's type list and in the data lines. Returns
    {name: POCs it occurs in} for the kept statistics. DataError naming the line for a
    `BlockStat` line that is not one of VTM's shapes."""
    from codecnn.errors import DataError
    from codecnn.io.sideinfo import parse_blockstat_line

    wanted = set(names)
    seen: dict[str, set[int]] = {}
    head = re.compile(r"^# Block Statistic Type: ([^;]+);")
    with atomic_output(Path(dst)) as tmp, \
            open(src, encoding="utf-8", errors="replace") as fin, \
            open(tmp, "w", encoding="utf-8") as fout:
        for number, line in enumerate(fin, 1):
            if line.startswith("#"):
                m = head.match(line)
                if m is None or m.group(1).strip() in wanted:
                    fout.write(line)
            elif line.startswith("BlockStat"):
                parsed = parse_blockstat_line(line)
                if parsed is None:
                    raise DataError(f"{src}:{number}: malformed BlockStat line "
                                    f"{line.strip()[:80]!r}")
                if parsed[2] in wanted:
                    fout.write(line)
                    seen.setdefault(parsed[2], set()).add(parsed[0])
    return seen
