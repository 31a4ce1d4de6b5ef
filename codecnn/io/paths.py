"""How paths are written into records (manifests, reports): relative to the record when the
target is close by, so a folder of results can be moved or copied whole; absolute otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def relative_within(path: str | os.PathLike, base: str | os.PathLike, levels: int = 2) -> str:
    """`path` relative to the folder `base` when it lies inside `base` or at most `levels`
    folders above it (OUT/<source>/original.yuv seen from OUT/<source>/vvc-ai/qp32/, or
    OUT/run/best.pt seen from OUT/report/); the absolute path otherwise (a file in the
    virtual environment, a shard on another disk)."""
    p = Path(path).resolve()
    root = Path(base).resolve()
    for _ in range(levels + 1):
        if root == root.parent:  # never relative to the file-system root
            break
        if p.is_relative_to(root):
            return os.path.relpath(p, Path(base).resolve())
        root = root.parent
    return str(p)
