"""The CTU grid and patch cutting: a picture → N patches of (C + 2·border)² samples.

A CTU at (x, y) becomes the patch rows y-b .. y+C+b-1, columns x-b .. x+C+b-1 of the
picture (b = border, C = ctu_size; 132×132 by default). Samples outside the picture repeat
the nearest edge sample (the same rule as numpy's `mode="edge"` padding), which is what a
decoder's reference-picture padding does. CTUs cut by the right/bottom edge are kept with
their valid width/height unless the caller asks for full CTUs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codecnn.errors import DataError


@dataclass(frozen=True)
class CtuPosition:
    """Top-left luma sample of a CTU and how much of it lies inside the picture."""

    x: int
    y: int
    valid_w: int
    valid_h: int


@dataclass(frozen=True)
class CtuGrid:
    """The CTU raster of a width×height picture (CTU size C, patch border b)."""

    width: int
    height: int
    ctu_size: int = 128
    border: int = 2

    def __post_init__(self) -> None:
        if self.ctu_size < 4 or self.ctu_size > 1024:
            raise DataError(f"CTU size must be 4..1024, got {self.ctu_size}")
        if self.border < 0 or self.border > self.ctu_size:
            raise DataError(f"border must be 0..{self.ctu_size}, got {self.border}")
        if self.width <= 0 or self.height <= 0:
            raise DataError(f"picture size must be positive, got {self.width}x{self.height}")

    @property
    def patch_size(self) -> int:
        return self.ctu_size + 2 * self.border

    @property
    def cols(self) -> int:
        return -(-self.width // self.ctu_size)

    @property
    def rows(self) -> int:
        return -(-self.height // self.ctu_size)

    def positions(self, full_ctus_only: bool = False) -> list[CtuPosition]:
        """CTUs in raster order; with full_ctus_only, those cut by the picture edge are left out."""
        c = self.ctu_size
        out = []
        for y in range(0, self.height, c):
            for x in range(0, self.width, c):
                vw, vh = min(c, self.width - x), min(c, self.height - y)
                if full_ctus_only and (vw < c or vh < c):
                    continue
                out.append(CtuPosition(x, y, vw, vh))
        return out

    def pad(self, plane: np.ndarray, border: int | None = None) -> np.ndarray:
        """Plane [H, W] edge-padded by `border` on every side and up to whole CTUs right/bottom."""
        if plane.shape != (self.height, self.width):
            raise DataError(
                f"plane of shape {plane.shape} does not match the {self.width}x{self.height} grid"
            )
        b = self.border if border is None else border
        extra_h = self.rows * self.ctu_size - self.height
        extra_w = self.cols * self.ctu_size - self.width
        return np.pad(plane, ((b, b + extra_h), (b, b + extra_w)), mode="edge")

    def cut(self, plane: np.ndarray, positions: list[CtuPosition], border: int | None = None,
            dtype: np.dtype | type | None = None) -> np.ndarray:
        """Patches [N, C+2b, C+2b] of `plane` at `positions` (b = grid border unless given).

        `cut(plane, pos, border=0)` gives the bare CTUs [N, C, C] (the `orig` target).
        """
        b = self.border if border is None else border
        size = self.ctu_size + 2 * b
        padded = self.pad(plane, b)
        # padded is shifted by b, so picture row y-b is padded row y: window (y, x) is the patch.
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
        ys = np.array([p.y for p in positions], np.intp)
        xs = np.array([p.x for p in positions], np.intp)
        out = windows[ys, xs]  # one gather, a copy [N, size, size]
        return out if dtype is None else out.astype(dtype, copy=False)
