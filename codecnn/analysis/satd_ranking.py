"""How Hadamard-SATD, DCT-SATD and SSE rank candidate predictions of the same block.

An encoder picks among candidate predictions by a cost; VTM's intra mode pre-selection uses
the Hadamard SATD. Here every B×B block of the original gets five candidates: the decoded
reconstruction itself and four intra-style predictions from the reconstructed neighbours
(DC, planar, horizontal, vertical, after VVC's formulas without reference filtering; the
neighbours come from the final, loop-filtered reconstruction, an approximation of what the
encoder saw). Each metric ranks the candidates per block; we report how often two metrics
pick a different best candidate, how often they order a pair of candidates oppositely, the
mean per-block Spearman rank correlation, and the global Spearman over all residuals.

The research note's DC-heavy example is computed alongside: an original block flat at 500
(10 bit), predicted flat at 100 (a pure-DC residual of 400) or at 450 with a ±100
checkerboard (residual 50 ± 100): the transform costs call the two similar while the pixel
SSE differs by an order of magnitude.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.analysis.outputs import markdown_table, pyplot, save_figure, write_json
from codecnn.analysis.satd import dct_satd, hadamard_satd, sse
from codecnn.errors import DataError

CANDIDATES = ("reconstruction", "dc", "planar", "horizontal", "vertical")
METRICS = ("hadamard", "dct", "dct_int", "sse")
METRIC_LABELS = {"hadamard": "Hadamard SATD (VTM)", "dct": "DCT-SATD (float)",
                 "dct_int": "DCT-SATD (VVC int)", "sse": "SSE"}


def candidate_predictions(rec_padded: np.ndarray, pad: int, height: int, width: int,
                          block: int) -> np.ndarray:
    """Candidate predictions for every block: int64 [K, ..., height, width], K = 5.

    rec_padded: [..., height + 2·pad, width + 2·pad] reconstruction with ≥ 1 sample of
    neighbours on each side (pad ≥ 1); blocks are block×block (a power of two).
    """
    if pad < 1:
        raise ValueError("candidate predictions need at least one neighbouring sample")
    r = rec_padded.astype(np.int64)
    lead = r.shape[:-2]
    nby, nbx = height // block, width // block
    n = block
    centre = r[..., pad : pad + height, pad : pad + width]
    ys = pad + np.arange(nby) * n  # first row of each block in padded coordinates
    xs = pad + np.arange(nbx) * n
    # top[..., by, bx, i] = sample above the block's row 0, column i; left likewise
    cols = xs[:, None] + np.arange(n)[None, :]  # [nbx, n]
    rows = ys[:, None] + np.arange(n)[None, :]  # [nby, n]
    top = r[..., ys - 1, :][..., cols]  # [..., nby, nbx, n]
    left = np.swapaxes(r[..., :, xs - 1][..., rows, :], -1, -2)  # [..., nby, nbx, n]
    top_right = r[..., ys - 1, :][..., xs + n]  # [..., nby, nbx]
    bottom_left = r[..., :, xs - 1][..., ys + n, :]  # [..., nby, nbx]
    log2n = n.bit_length() - 1
    dc = (top.sum(-1) + left.sum(-1) + n) >> (log2n + 1)
    i = np.arange(n)
    # VVC planar: ((n-1-x)·left[y] + (x+1)·topRight + (n-1-y)·top[x] + (y+1)·bottomLeft + n)
    #             >> (log2 n + 1), for a square block
    hor = ((n - 1 - i)[None, :] * left[..., :, None]
           + (i + 1)[None, :] * top_right[..., None, None])
    ver = ((n - 1 - i)[:, None] * top[..., None, :]
           + (i + 1)[:, None] * bottom_left[..., None, None])
    planar = (hor + ver + n) >> (log2n + 1)
    shape = (*lead, nby, nbx, n, n)
    preds = [
        np.broadcast_to(dc[..., None, None], shape),
        planar,
        np.broadcast_to(left[..., :, None], shape),
        np.broadcast_to(top[..., None, :], shape),
    ]
    out = [centre]
    for p in preds:  # [..., nby, nbx, n, n] → [..., H, W]
        out.append(np.swapaxes(p, -3, -2).reshape(*lead, height, width))
    return np.stack(out)


def block_metrics(orig: np.ndarray, preds: np.ndarray, block: int) -> dict[str, np.ndarray]:
    """Each metric of orig − pred per block: {metric: float64 [K, ..., H/B, W/B]}."""
    res = orig.astype(np.int64)[None] - preds
    b = (block, block)
    return {
        "hadamard": hadamard_satd(res, b).astype(np.float64),
        "dct": dct_satd(res, b),
        "dct_int": dct_satd(res, b, kind="int"),
        "sse": sse(res, b).astype(np.float64),
    }


def rank_statistics(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
    """Agreement of metrics on candidate order; metrics[m] is [K, M] (K candidates, M blocks)."""
    from scipy import stats

    names = list(metrics)
    k, m = metrics[names[0]].shape
    if m == 0:
        raise DataError("no complete blocks to rank")
    best = {n: np.argmin(v, axis=0) for n, v in metrics.items()}
    ranks = {n: stats.rankdata(v, axis=0) for n, v in metrics.items()}
    pairs = {}
    for a, b in combinations(names, 2):
        va, vb = metrics[a], metrics[b]
        discord = ties = total = 0
        for i, j in combinations(range(k), 2):
            da, db = np.sign(va[i] - va[j]), np.sign(vb[i] - vb[j])
            strict = (da != 0) & (db != 0)
            discord += int((strict & (da != db)).sum())
            ties += int((~strict).sum())
            total += int(strict.sum())
        ra, rb = ranks[a], ranks[b]
        ra_c, rb_c = ra - ra.mean(0), rb - rb.mean(0)
        den = np.sqrt((ra_c**2).sum(0) * (rb_c**2).sum(0))
        ok = den > 0
        per_block = (ra_c * rb_c).sum(0)[ok] / den[ok]
        glob = stats.spearmanr(va.ravel(), vb.ravel()).statistic
        pairs[f"{a}~{b}"] = {
            "best_disagreement": float(np.mean(best[a] != best[b])),
            "pair_disagreement": discord / total if total else None,
            "tied_pairs": ties / (ties + total) if ties + total else None,
            "mean_block_spearman": float(per_block.mean()) if per_block.size else None,
            "blocks_with_ranking": int(ok.sum()),
            "global_spearman": float(glob) if np.isfinite(glob) else None,
        }
    chosen = {n: {c: float(np.mean(best[n] == i)) for i, c in enumerate(CANDIDATES[:k])}
              for n in names}
    return {"blocks": int(m), "candidates": list(CANDIDATES[:k]), "pairs": pairs,
            "best_candidate_share": chosen}


def dc_heavy_example() -> dict[str, Any]:
    """The research note's example on an 8×8 block: original flat 500 (10 bit); predictions
    flat 100 (pure DC residual), 450 ± 100 checkerboard, and flat 450 for reference."""
    block = 8
    orig = np.full((block, block), 500, dtype=np.int64)
    checker = np.where((np.arange(block)[:, None] + np.arange(block)[None, :]) % 2 == 0, 1, -1)
    preds = {"flat 100 (residual 400, all DC)": np.full((block, block), 100, np.int64),
             "450 ± 100 checkerboard (residual 50 ± 100)": 450 - 100 * checker,
             "flat 450 (residual 50, all DC)": np.full((block, block), 450, np.int64)}
    res = np.stack([orig - p for p in preds.values()])
    b = (block, block)
    values = {"hadamard": hadamard_satd(res, b)[:, 0, 0].astype(float),
              "hadamard_no_dc_scaling": _hadamard_plain(res),
              "dct": dct_satd(res, b)[:, 0, 0], "dct_int": dct_satd(res, b, kind="int")[:, 0, 0],
              "sse": sse(res, b)[:, 0, 0].astype(float)}
    rows = []
    for i, name in enumerate(preds):
        rows.append({"candidate": name, **{k: float(v[i]) for k, v in values.items()}})
    a, c = rows[0], rows[1]
    return {"block": block, "original": 500, "candidates": rows,
            "ratio_flat100_to_checker": {k: a[k] / c[k] for k in values}}


def _hadamard_plain(res: np.ndarray) -> np.ndarray:
    """VTM's 8×8 Hadamard SATD with the DC counted fully (before JVET-R0164), for contrast."""
    from scipy.linalg import hadamard

    h = hadamard(8)
    c = np.abs(np.einsum("ij,njk,lk->nil", h, res, h)).sum(axis=(1, 2))
    return ((c + 2) // 4).astype(float)


def iter_shard_blocks(data, qps=None, progress: bool = True) -> Iterator[tuple]:
    """(orig [n, C, C], rec [n, P, P], border, valid_w [n], valid_h [n]) per shard chunk."""
    from codecnn.analysis.ctu_data import iter_chunks

    for ch in iter_chunks(data, qps, with_depth=False, progress=progress):
        yield ch.orig, ch.rec, ch.border, ch.meta["valid_w"], ch.meta["valid_h"]


def iter_yuv_blocks(rec_path, orig_path, *, size=None, bit_depth=None, frames=None,
                    progress: bool = True) -> Iterator[tuple]:
    """(orig [1, H, W], rec padded by 1 [1, H+2, W+2], 1, valid_w, valid_h) per frame."""
    from tqdm import tqdm

    from codecnn.io.yuv import open_yuv

    kw = {}
    if size:
        kw["width"], kw["height"] = size
    if bit_depth:
        kw["bit_depth"] = bit_depth
    rec = open_yuv(rec_path, **kw)
    orig = open_yuv(orig_path, **kw)
    if rec.format != orig.format:
        raise DataError(f"{rec_path}: format {rec.format} differs from {orig_path} "
                        f"({orig.format})")
    n = min(len(rec), len(orig)) if frames is None else min(frames, len(rec), len(orig))
    if len(rec) != len(orig) and frames is None:
        raise DataError(f"{rec_path}: {len(rec)} frames but {orig_path} has {len(orig)}")
    w, h = rec.format.width, rec.format.height
    for k in tqdm(range(n), desc="frames", disable=None if progress else True,
                  leave=False):
        r = np.pad(np.asarray(rec.luma(k)), 1, mode="edge")[None]
        yield (np.asarray(orig.luma(k))[None], r, 1, np.array([w]), np.array([h]))


def analyze_blocks(units: Iterator[tuple], block: int) -> dict[str, np.ndarray]:
    """Metrics of all candidates over all blocks inside the picture: {metric: [K, M]}."""
    acc: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for orig, rec, pad, valid_w, valid_h in units:
        h, w = orig.shape[-2:]
        hb, wb = h // block * block, w // block * block
        if hb == 0 or wb == 0:
            continue
        o = orig[..., :hb, :wb]
        rp = rec[..., : hb + 2 * pad, : wb + 2 * pad]
        preds = candidate_predictions(rp, pad, hb, wb, block)
        vals = block_metrics(o, preds, block)  # [K, n, nby, nbx]
        # keep blocks entirely inside the picture's valid area
        by = np.arange(hb // block)[None, :, None] * block + block
        bx = np.arange(wb // block)[None, None, :] * block + block
        inside = ((by <= np.asarray(valid_h)[:, None, None])
                  & (bx <= np.asarray(valid_w)[:, None, None]))
        for m in METRICS:
            acc[m].append(vals[m][:, inside])
    if not acc["sse"]:
        raise DataError("no complete blocks in the input")
    return {m: np.concatenate(v, axis=1) for m, v in acc.items()}


def satd_table(result: dict[str, Any]) -> str:
    rows = []
    for pair, s in result["ranking"]["pairs"].items():
        a, b = pair.split("~")
        rows.append([f"{METRIC_LABELS[a]} vs {METRIC_LABELS[b]}", s["best_disagreement"],
                     s["pair_disagreement"], s["mean_block_spearman"], s["global_spearman"]])
    text = markdown_table(["metrics", "best differs", "pairs reversed",
                           "mean block Spearman", "global Spearman"], rows)
    ex = result["dc_heavy_example"]
    erows = [[c["candidate"], c["hadamard"], c["dct"], c["dct_int"], c["sse"]]
             for c in ex["candidates"]]
    text += (f"\n\nDC-heavy example ({ex['block']}×{ex['block']}, original flat "
             f"{ex['original']}):\n")
    text += markdown_table(["prediction", "Hadamard SATD", "DCT-SATD", "DCT-SATD int", "SSE"],
                           erows)
    r = ex["ratio_flat100_to_checker"]
    text += (f"\nflat-100 / checkerboard: Hadamard ×{r['hadamard']:.2f}, DCT ×{r['dct']:.2f}, "
             f"SSE ×{r['sse']:.1f} (Hadamard without the quarter-DC rule "
             f"×{r['hadamard_no_dc_scaling']:.2f})")
    return text


def plot_satd(metrics: dict[str, np.ndarray], result: dict[str, Any], path: Path) -> Path:
    """satd_figure saved as PNG."""
    return save_figure(satd_figure(metrics, result), path)


CANDIDATE_CAPTION = (
    "Candidates for each {b}×{b} block of the original (5 per block): the decoded "
    "reconstruction itself, and four intra predictions from the reconstructed neighbours: "
    "DC (mean of the row above and the column left), planar (VVC's blend of those), horizontal "
    "(each row = its left neighbour) and vertical (each column = its top neighbour); VVC "
    "formulas without reference filtering. Each metric scores a candidate by its residual "
    "against the original and ranks the 5.")


def satd_figure(metrics: dict[str, np.ndarray], result: dict[str, Any]):
    """Left: how often two metrics disagree (best candidate, candidate pairs), in % ; right:
    Hadamard SATD vs SSE per block, with the research note's DC-heavy example; a caption
    says what the candidates are."""
    from matplotlib.ticker import PercentFormatter

    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11.5, 5.0), layout="constrained")
    pairs = result["ranking"]["pairs"]
    labels = [p.replace("~", "\nvs ").replace("dct_int", "DCT int").replace("dct", "DCT")
              .replace("hadamard", "Had.").replace("sse", "SSE") for p in pairs]
    x = np.arange(len(pairs))
    blocks = result["ranking"]["blocks"]
    ax0.bar(x - 0.2, [100 * p["best_disagreement"] for p in pairs.values()], 0.4,
            label="best candidate differs (% of blocks)")
    reversed_ = [p["pair_disagreement"] for p in pairs.values()]
    ax0.bar(x + 0.2, [100 * (v if v is not None else np.nan) for v in reversed_], 0.4,
            label="candidate pairs ordered oppositely\n(% of pairs neither metric ties)")
    for xi, v in zip(x, reversed_, strict=True):
        if v is None:  # every pair tied under one of the metrics: no share to show
            ax0.text(xi + 0.2, 0, "n/a", ha="center", va="bottom", fontsize=7, color="0.3")
    ax0.set_xticks(x, labels, fontsize=7)
    ax0.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax0.set_ylabel("disagreement between two metrics")
    ax0.set_title(f"Do two metrics rank the 5 candidates alike? ({blocks} blocks)",
                  fontsize=10)
    ax0.set_ylim(0, ax0.get_ylim()[1] * 1.3)  # headroom for the legend
    ax0.legend(fontsize=8, loc="upper left")
    had, s = metrics["hadamard"][0], metrics["sse"][0]
    keep = (had > 0) & (s > 0)
    ax1.scatter(s[keep], had[keep], s=3, alpha=0.3,
                label="decoded blocks (candidate: reconstruction)")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("SSE of the residual orig − reconstruction")
    ax1.set_ylabel("Hadamard SATD (VTM) of that residual")
    if result["block"] == result["dc_heavy_example"]["block"]:  # same block size: comparable
        ex = result["dc_heavy_example"]
        for c, mk in zip(ex["candidates"], ("rs", "g^", "kD"), strict=True):
            ax1.plot(c["sse"], c["hadamard"], mk, ms=8, label=c["candidate"])
        ax1.legend(fontsize=7, loc="upper left", title_fontsize=7,
                   title=f"markers: the research note's example\n(original flat at "
                         f"{ex['original']}, {ex['block']}×{ex['block']}, 10-bit)")
    else:
        ax1.legend(fontsize=7, loc="upper left")
    ax1.set_title(f"per {result['block']}×{result['block']} block: Hadamard SATD vs SSE",
                  fontsize=10)
    fig.text(0.01, -0.01, textwrap.fill(CANDIDATE_CAPTION.format(b=result["block"]), 190),
             fontsize=7.5, va="top", ha="left", color="0.2")
    return fig


def satd_report(out_dir: str | os.PathLike, *, data=None, rec=None, orig=None,
                      size: tuple[int, int] | None = None, bit_depth: int | None = None,
                      block: int = 8, qps: Sequence[int] | None = None,
                      frames: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Rank candidates by each metric over shards (data) or a YUV pair (rec, orig).

    Writes OUT/satd.json and OUT/satd.png; returns the result with 'table' and 'files'.
    """
    if block not in (4, 8, 16, 32):
        raise DataError(f"block size must be 4, 8, 16 or 32, got {block}")
    if (data is None) == (rec is None or orig is None):
        raise DataError("give either --data SHARDS or both --rec and --orig")
    if data is not None:
        units = iter_shard_blocks(data, qps, progress)
        source = {"shards": [str(p) for p in (data if isinstance(data, list | tuple)
                                              else [data])]}
    else:
        units = iter_yuv_blocks(rec, orig, size=size, bit_depth=bit_depth, frames=frames,
                                progress=progress)
        source = {"rec": str(rec), "orig": str(orig)}
    metrics = analyze_blocks(units, block)
    result = {"source": source, "block": block, "metrics": list(METRICS),
              "ranking": rank_statistics(metrics), "dc_heavy_example": dc_heavy_example()}
    out = Path(out_dir)
    png = plot_satd(metrics, result, out / "satd.png")
    js = write_json(out / "satd.json", result)
    result["table"] = satd_table(result)
    result["files"] = [str(js), str(png)]
    return result
