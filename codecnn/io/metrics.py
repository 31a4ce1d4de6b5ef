"""Picture quality: PSNR with the peak of the bit depth, MSE per frame, and the one scorer.

Every stage uses these, so PSNR means the same thing everywhere: per frame
10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1 (1023 at 10 bit), then averaged over
the frames of a sequence and then over the sequences of a QP, as the JVET common test
conditions do (never a fixed 255, never an MSE pooled over a batch).

`PsnrAccumulator` does that picture → sequence → QP averaging for training's validation,
shard scoring and whole-sequence evaluation alike; `mean_per_qp` is its sequence → QP step.
Every result row uses the same names: "qp" (nominal QP, or "all" for the mean over QPs),
"sequences", "pictures", "psnr_rec" (the decoder's reconstruction), "psnr_filt" (filtered)
and "gain" (psnr_filt − psnr_rec, dB).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

# HM/VTM print 999.99 dB for a frame identical to the original; we keep the same convention
# so one lossless frame does not turn a sequence average into infinity.
PSNR_IDENTICAL = 999.99


def sse(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences of two integer planes (exact, in int64)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = (a.astype(np.int64) - b.astype(np.int64)).ravel()
    return float(np.dot(d, d))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two equally shaped sample arrays (any integer/float dtype)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def mse_to_psnr(mse_value: float, bit_depth: int) -> float:
    """10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1; 999.99 dB when MSE is 0.

    A non-finite MSE (NaN/inf from a broken filter) is an error, never a number.
    """
    if not math.isfinite(mse_value):
        raise ValueError(f"MSE is {mse_value}: the filtered samples are not finite")
    if mse_value <= 0.0:
        return PSNR_IDENTICAL
    peak = (1 << bit_depth) - 1
    return 10.0 * math.log10(peak * peak / mse_value)


def psnr(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> float:
    """PSNR in dB of one frame/plane [H, W] at `bit_depth`; 999.99 when identical."""
    return mse_to_psnr(mse(a, b), bit_depth)


def psnr_frames(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> np.ndarray:
    """Per-frame PSNR of two stacks [N, H, W] → float64 [N]."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two [N, H, W] stacks, got {a.shape} and {b.shape}")
    return np.array([psnr(x, y, bit_depth) for x, y in zip(a, b, strict=True)])


def mean_per_qp(rows: Iterable[dict[str, Any]], keys: Iterable[str]) -> list[dict[str, Any]]:
    """Rows grouped by their "qp", ascending: {"qp", "sequences" (rows in the group), and the
    mean of each key over the group's rows}. A None value is left out of its mean (None when
    a group has no value): the sequence → QP step of the scorer."""
    keys = tuple(keys)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["qp"]].append(r)
    return [{"qp": qp, "sequences": len(g), **{k: mean_of([r.get(k) for r in g]) for k in keys}}
            for qp, g in sorted(groups.items())]


def mean_of(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None; None when there is none."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


class PsnrAccumulator:
    """Squared errors per picture → PSNR-Y per picture → mean per sequence → mean per QP.

    `add` sums, per picture (sequence, nominal QP, POC), the sample count and the SSE of each
    version of it (by default "rec" and "filt"); a picture may come in parts (CTUs scored in
    several batches). PSNR is taken per picture from its summed SSE, then averaged.

        acc = PsnrAccumulator(bit_depth=10)
        acc.add("bikes", 32, poc=0, samples=n, rec=sse_rec, filt=sse_filt)
        acc.qp_rows()   # [{"qp": 32, "sequences": 1, "pictures": 1, "psnr_rec", ...}]
    """

    def __init__(self, bit_depth: int, versions: tuple[str, ...] = ("rec", "filt")) -> None:
        self.bit_depth = int(bit_depth)
        self.versions = tuple(versions)
        # (sequence, qp, poc) → [samples, SSE of each version]
        self._pictures: dict[tuple[str, int, int], list[float]] = {}

    def add(self, sequence: str, qp: int, poc: int, samples: int, **sse: float) -> None:
        """Add `samples` samples of picture (sequence, qp, poc) with their SSE per version."""
        if set(sse) != set(self.versions):
            raise ValueError(f"SSE given for {sorted(sse)}, expected {list(self.versions)}")
        acc = self._pictures.setdefault((sequence, int(qp), int(poc)),
                                        [0.0] * (1 + len(self.versions)))
        acc[0] += samples
        for i, v in enumerate(self.versions, 1):
            acc[i] += float(sse[v])

    def __len__(self) -> int:
        return len(self._pictures)

    def sequence_rows(self) -> list[dict[str, Any]]:
        """Per (QP, sequence), sorted: {"qp", "sequence", "pictures", "psnr_<version>"...,
        "gain"}: each picture's PSNR averaged over the sequence's pictures. Pictures without
        samples (none of their CTUs in the set) are left out. ValueError when an SSE is not
        finite (see mse_to_psnr)."""
        per_seq: dict[tuple[int, str], list[list[float]]] = defaultdict(list)
        for (seq, qp, _poc), (n, *sums) in self._pictures.items():
            if n > 0:
                per_seq[(qp, seq)].append([mse_to_psnr(s / n, self.bit_depth) for s in sums])
        rows = []
        for (qp, seq), pics in sorted(per_seq.items()):
            means = np.mean(pics, axis=0)
            row = {"qp": qp, "sequence": seq, "pictures": len(pics),
                   **{f"psnr_{v}": float(m) for v, m in zip(self.versions, means, strict=True)}}
            if "rec" in self.versions and "filt" in self.versions:
                row["gain"] = row["psnr_filt"] - row["psnr_rec"]
            rows.append(row)
        return rows

    def qp_rows(self, with_mean: bool = False) -> list[dict[str, Any]]:
        """Per nominal QP: {"qp", "sequences", "pictures", "psnr_<version>"..., "gain"}, each
        PSNR the mean over the QP's sequences of their per-picture means. With `with_mean`, a
        last row {"qp": "all", ...}: the mean of each PSNR and gain over the QPs, the distinct
        sequences and every picture."""
        seq_rows = self.sequence_rows()
        keys = [f"psnr_{v}" for v in self.versions]
        if seq_rows and "gain" in seq_rows[0]:
            keys.append("gain")
        rows = []
        for r in mean_per_qp(seq_rows, keys):
            pictures = sum(s["pictures"] for s in seq_rows if s["qp"] == r["qp"])
            rows.append({"qp": r["qp"], "sequences": r["sequences"], "pictures": pictures,
                         **{k: r[k] for k in keys}})
        if with_mean and rows:
            rows.append({"qp": "all", "sequences": len({s["sequence"] for s in seq_rows}),
                         "pictures": sum(r["pictures"] for r in rows),
                         **{k: mean_of([r[k] for r in rows]) for k in keys}})
        return rows
