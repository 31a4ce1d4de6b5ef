"""The CTU grid of a picture: the one definition that extraction (training patches) and
filtering (inference tiles) both cut with, so the two can never see different pixels.

A CTU at (x, y) becomes the patch rows y-b .. y+C+b-1, columns x-b .. x+C+b-1 of the picture
(b = border, C = ctu_size; 132×132 by default). Samples outside the picture repeat the
nearest edge sample (numpy's `mode="edge"`), which is what a decoder's reference-picture
padding does. At the right/bottom the picture is padded
up to whole CTUs, so a CTU cut by the edge still gives a whole patch; its valid width/height
(`CtuPosition.valid_w/valid_h`) say how much of it is picture.

    plane [..., H, W] ──pad──▶ [..., rows·C + 2b, cols·C + 2b] ──tiles──▶ [..., rows, cols, P, P]

Extraction `cut`s the patches it stores; filtering pads the same way, uploads the padded
planes and takes `tiles` on its device. `tiles` is a view, so a caller copies only the
patches it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from codecnn.errors import DataError


class CtuPosition(NamedTuple):
    """Top-left luma sample of a CTU and how much of it lies inside the picture; as a tuple
    (x, y, w, h), the block a statistics file (codecnn.io.blockstats) paints."""

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

    def __len__(self) -> int:
        return self.rows * self.cols

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
        """Plane [..., H, W] edge-padded by `border` (the grid's unless given) on every side
        and up to whole CTUs right/bottom: [..., rows·C + 2b, cols·C + 2b]."""
        if tuple(plane.shape[-2:]) != (self.height, self.width):
            raise DataError(f"plane of shape {tuple(plane.shape)} does not match the "
                            f"{self.width}x{self.height} grid")
        b = self.border if border is None else border
        bottom = b + self.rows * self.ctu_size - self.height
        right = b + self.cols * self.ctu_size - self.width
        lead = [(0, 0)] * (plane.ndim - 2)
        return np.pad(plane, [*lead, (b, bottom), (b, right)], mode="edge")

    def tiles(self, padded: Any, border: int | None = None) -> Any:
        """Every CTU's patch as a view [..., rows, cols, P, P] of a `pad`ded plane (P = C +
        2·border; the grid's border unless given), a numpy array or a torch tensor (filtering
        cuts on its device)."""
        b = self.border if border is None else border
        c, p = self.ctu_size, self.ctu_size + 2 * b
        if tuple(padded.shape[-2:]) != (self.rows * c + 2 * b, self.cols * c + 2 * b):
            raise DataError(f"padded plane of shape {tuple(padded.shape)} does not match the "
                            f"{self.width}x{self.height} grid with border {b}")
        if isinstance(padded, np.ndarray):
            windows = np.lib.stride_tricks.sliding_window_view(padded, (p, p), axis=(-2, -1))
            return windows[..., ::c, ::c, :, :]
        return padded.unfold(-2, p, c).unfold(-2, p, c)

    def cut(self, plane: np.ndarray, positions: list[CtuPosition], border: int | None = None,
            dtype: np.dtype | type | None = None) -> np.ndarray:
        """Patches [N, C+2b, C+2b] of `plane` [H, W] at `positions` (b = grid border unless
        given), a copy. `cut(plane, pos, border=0)` gives the bare CTUs [N, C, C] (the
        `orig` target)."""
        c = self.ctu_size
        if any(q.x % c or q.y % c for q in positions):
            raise DataError(f"positions must lie on the {c}x{c} CTU grid")
        windows = self.tiles(self.pad(plane, border), border)
        rows = np.array([q.y // c for q in positions], np.intp)
        cols = np.array([q.x // c for q in positions], np.intp)
        out = windows[rows, cols]  # one gather, a copy [N, P, P]
        return out if dtype is None else out.astype(dtype, copy=False)
