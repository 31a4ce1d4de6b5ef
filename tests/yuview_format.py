"""What YUView needs of a `.vtmbmsstats` file, checked the way its statistics reader reads one.

YUView (IENT/YUView, StatisticsFileVTMBMS) reads header lines up to the first line that does
not start with `#`: the picture size from `# Sequence size: [Wx H]` (the width directly
followed by `x`) and each statistic from `# Block Statistic Type: NAME; KIND; INFO`, an
Integer's colour range from `[min, max]` in INFO. Data lines are found by `BlockStat: POC p`
(p without a sign); a picture's lines are read from its first line up to the first line of
another POC, so they must be contiguous. A scalar line matches
`POC p @( x, y) [ wx h] Name=v`.
"""

from __future__ import annotations

import re
from pathlib import Path

SIZE = re.compile(r"# Sequence size: \[([0-9]+)x *([0-9]+)\]")
TYPE = re.compile(r"# Block Statistic Type: *([0-9a-zA-Z_]+); *([0-9a-zA-Z]+); *(.*)")
RANGE = re.compile(r"\[([0-9\-]+), *([0-9\-]+)\]")
POC = re.compile(r"BlockStat: POC ([0-9]+)")
SCALAR = re.compile(r"POC ([0-9]+) @\( *([0-9]+), *([0-9]+)\) *\[ *([0-9]+)x *([0-9]+)\] "
                    r"*(\w+)=([0-9\-]+)")


def read_like_yuview(path: str | Path) -> tuple[tuple[int, int], dict, dict]:
    """((width, height), {name: (kind, range or None)}, {poc: {name: [(x, y, w, h, v)]}});
    AssertionError where YUView would not read the file as written."""
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "# VTMBMS Block Statistics", lines[0]
    size, types = None, {}
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        if m := SIZE.match(lines[n]):
            size = (int(m.group(1)), int(m.group(2)))
        if m := TYPE.match(lines[n]):
            r = RANGE.search(m.group(3))
            types[m.group(1)] = (m.group(2), (int(r.group(1)), int(r.group(2))) if r else None)
        n += 1
    assert size is not None and types, "no size or no statistic types in the header"
    data: dict[int, dict[str, list]] = {}
    done: set[int] = set()
    current = None
    for line in lines[n:]:
        m = POC.match(line)
        assert m, f"not a BlockStat line: {line!r}"
        poc = int(m.group(1))
        if poc != current:
            assert poc not in done, f"POC {poc} is not contiguous"
            if current is not None:
                done.add(current)
            current = poc
        s = SCALAR.search(line)
        assert s and s.group(6) in types, line
        x, y, w, h, v = (int(s.group(i)) for i in (2, 3, 4, 5, 7))
        assert x + w <= size[0] and y + h <= size[1], f"block outside the picture: {line!r}"
        kind, rng = types[s.group(6)]
        if kind == "Flag":
            assert v in (0, 1), line
        else:
            assert rng[0] <= v <= rng[1], f"{line!r} outside the declared range {rng}"
        data.setdefault(poc, {}).setdefault(s.group(6), []).append((x, y, w, h, v))
    return size, types, data
