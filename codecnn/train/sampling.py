"""Balanced training draws: which patch, which symmetry and which crop each position gets.

A corpus is lopsided: a 2560×1600 photograph gives 260 CTUs per QP, a 176×144 clip frame 2.
Drawing patches uniformly would train mostly on the largest sources. Here every draw first
picks a source by its weight (default: uniform over sources), then a nominal QP uniformly
among those the source has, then a patch of that (source, QP) uniformly, then one of the 8
dihedral transforms and a crop offset.

Every draw is a pure function of (seed, step, position in the global batch): a resumed run
draws exactly what the uninterrupted run would have, and under DDP rank r takes the r-th
slice of each global batch, so ranks never see the same draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np
import torch


class Draw(NamedTuple):
    """One training item, as ShardDataset takes it: patch index, dihedral k (0 = identity),
    crop offset (y, x) and crop side (0: the whole CTU)."""

    index: int
    k: int
    y: int
    x: int
    size: int


class BalancedDraws:
    """The draw table of a dataset.

    Args:
        sequences: sequence name of each patch [N].
        qps: nominal QP of each patch [N].
        valid: (valid_h, valid_w) of each patch [N, 2] (CTUs cut by the picture edge).
        weights: relative weight per sequence (missing names: 1.0; 0 leaves one out).
        crop: side of the output window, or None for the whole CTU.
        ctu_size: side of the whole CTU (128).
        dihedral: draw one of the 8 symmetries (else always the identity).
    """

    def __init__(self, sequences: np.ndarray, qps: np.ndarray, valid: np.ndarray,
                 weights: Mapping[str, float] | None = None, crop: int | None = None,
                 ctu_size: int = 128, dihedral: bool = True) -> None:
        weights = dict(weights or {})
        names = sorted(set(sequences.tolist()))
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"source weight for {unknown[0]!r}, which is not in the "
                             f"training data (have {', '.join(names)})")
        self.names = [n for n in names if weights.get(n, 1.0) > 0]
        if not self.names:
            raise ValueError("every source has weight 0")
        w = np.array([float(weights.get(n, 1.0)) for n in self.names])
        if (w < 0).any():
            raise ValueError("source weights must be >= 0")
        self.source_p = w / w.sum()
        self.groups: list[list[np.ndarray]] = []  # per source, per QP: patch indices
        self.group_qps: list[list[int]] = []
        for n in self.names:
            sel = sequences == n
            qs = sorted({int(q) for q in qps[sel]})
            self.group_qps.append(qs)
            self.groups.append([np.nonzero(sel & (qps == q))[0] for q in qs])
        self.valid = np.asarray(valid, np.int64)
        self.crop = crop
        self.ctu_size = ctu_size
        self.dihedral = dihedral
        if crop is not None and not 0 < crop <= ctu_size:
            raise ValueError(f"--crop must be in 1..{ctu_size}, got {crop}")

    def batch(self, seed: int, step: int, size: int) -> list[Draw]:
        """The `size` draws of global batch `step` (a pure function of its arguments)."""
        rng = np.random.default_rng([seed, step])
        src = rng.choice(len(self.names), size=size, p=self.source_p)
        u = rng.random((size, 4))
        ks = rng.integers(0, 8, size) if self.dihedral else np.zeros(size, np.int64)
        out = []
        for i in range(size):
            groups = self.groups[src[i]]
            g = groups[int(u[i, 0] * len(groups))]
            index = int(g[int(u[i, 1] * len(g))])
            y = x = 0
            if self.crop is not None:
                vh, vw = self.valid[index]
                # Keep the window inside the picture where the CTU is large enough.
                y = int(u[i, 2] * (max(int(vh), self.crop) - self.crop + 1))
                x = int(u[i, 3] * (max(int(vw), self.crop) - self.crop + 1))
            out.append(Draw(index, int(ks[i]), y, x, self.crop or 0))
        return out

    def per_source(self, draws: list[Draw], sequences: np.ndarray) -> dict[str, int]:
        """How many of `draws` fell on each source (for checking the weights)."""
        counts = dict.fromkeys(self.names, 0)
        for d in draws:
            counts[str(sequences[d.index])] += 1
        return counts


class BalancedSampler(torch.utils.data.Sampler):
    """Endless Draws for one process from optimizer step `start_step` on.

    Step s of rank r yields items [r·B, (r+1)·B) of the global batch `table.batch(seed, s, B·W)`.
    """

    def __init__(self, table: BalancedDraws, batch: int, seed: int, rank: int = 0,
                 world: int = 1, start_step: int = 0) -> None:
        self.table, self.batch, self.seed = table, batch, seed
        self.rank, self.world, self.start_step = rank, world, start_step

    def __iter__(self) -> Iterator[Draw]:
        step = self.start_step
        while True:
            draws = self.table.batch(self.seed, step, self.batch * self.world)
            yield from draws[self.rank * self.batch:(self.rank + 1) * self.batch]
            step += 1
