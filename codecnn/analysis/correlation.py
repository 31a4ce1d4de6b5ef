"""How the CTU residual MSE relates to QP and CU depth: Pearson (p, 95 % CI) and Spearman.

Per CTU: the MSE of orig − rec over the valid area, the slice QP and the mean CU depth.
Results over all CTUs and per nominal QP. Within one nominal QP of an All-Intra sequence the
slice QP is constant, so QP-vs-MSE there is reported as undefined (with the reason), never
as NaN. A data set without depth gives the QP results and says that depth is absent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.analysis.ctu_data import CtuTable, load_ctu_table
from codecnn.analysis.report import markdown_table, pyplot, save_figure, write_json
from codecnn.errors import DataError


class UndefinedCorrelation(ValueError):
    """A correlation that does not exist for these data (constant variable, too few points)."""


@dataclass(frozen=True)
class Pearson:
    r: float
    p: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class Spearman:
    rho: float
    p: float
    n: int


def _check_pair(x: np.ndarray, y: np.ndarray, min_n: int,
                names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if x.size < min_n:
        raise UndefinedCorrelation(f"only {x.size} points (need {min_n})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UndefinedCorrelation("non-finite values")
    for name, v in zip(names, (x, y), strict=True):
        if np.all(v == v[0]):
            raise UndefinedCorrelation(f"{name} is constant ({v[0]:g})")
    return x, y


def _r_and_p(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and its two-sided p-value (t-test with n − 2 degrees of freedom)."""
    from scipy import stats

    xm, ym = x - x.mean(), y - y.mean()
    # normalise first: sums of squares of large MSEs would lose digits otherwise
    xm /= np.linalg.norm(xm)
    ym /= np.linalg.norm(ym)
    r = float(np.clip(np.dot(xm, ym), -1.0, 1.0))
    n = x.size
    if abs(r) == 1.0:
        return r, 0.0
    t = r * math.sqrt((n - 2) / ((1.0 - r) * (1.0 + r)))
    return r, float(2.0 * stats.t.sf(abs(t), n - 2))


def pearson(x, y, confidence: float = 0.95, names: tuple[str, str] = ("x", "y")) -> Pearson:
    """Pearson r, two-sided p-value and Fisher-z confidence interval (needs n ≥ 4)."""
    from scipy import stats

    x, y = _check_pair(x, y, 4, names)
    r, p = _r_and_p(x, y)
    z = math.atanh(max(min(r, 1 - 1e-16), -1 + 1e-16))
    half = stats.norm.ppf(0.5 + confidence / 2) / math.sqrt(x.size - 3)
    return Pearson(r, p, math.tanh(z - half), math.tanh(z + half), int(x.size))


def spearman(x, y, names: tuple[str, str] = ("x", "y")) -> Spearman:
    """Spearman's rho (Pearson on average ranks) and its two-sided p-value (n ≥ 3)."""
    from scipy import stats

    x, y = _check_pair(x, y, 3, names)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho, p = _r_and_p(rx, ry)
    return Spearman(rho, p, int(x.size))


def correlate(x, y, names: tuple[str, str] = ("x", "y")) -> dict[str, Any]:
    """Pearson and Spearman as a plain dict; {'undefined': reason} when they do not exist."""
    try:
        pe, sp = pearson(x, y, names=names), spearman(x, y, names=names)
    except UndefinedCorrelation as e:
        return {"n": int(np.size(x)), "undefined": str(e)}
    return {"n": pe.n, "pearson_r": pe.r, "pearson_p": pe.p, "ci95": [pe.ci_low, pe.ci_high],
            "spearman_rho": sp.rho, "spearman_p": sp.p}


def analyze_correlation(table: CtuTable) -> dict[str, Any]:
    """QP-vs-MSE and depth-vs-MSE correlations over all CTUs and per nominal QP."""
    if np.all(table.mse == table.mse[0]):
        raise DataError(f"{_where(table)}: residual MSE is constant ({table.mse[0]:g}) over "
                        f"{table.n} CTUs; its correlation with QP or depth is undefined")
    groups: dict[str, np.ndarray] = {"all": np.ones(table.n, bool)}
    for q in np.unique(table.nominal_qp):
        groups[f"QP{int(q)}"] = table.nominal_qp == q
    results = {}
    for name, m in groups.items():
        entry = {"n": int(m.sum()), "mse_mean": float(table.mse[m].mean()),
                 "qp_vs_mse": correlate(table.slice_qp[m], table.mse[m], ("slice QP", "MSE"))}
        if table.has_depth:
            entry["depth_vs_mse"] = correlate(table.mean_depth[m], table.mse[m],
                                              ("mean depth", "MSE"))
            entry["depth_mean"] = float(table.mean_depth[m].mean())
        results[name] = entry
    return {
        "n_ctus": table.n,
        "bit_depth": table.bit_depth,
        "has_depth": table.has_depth,
        "depth_note": None if table.has_depth else (
            "depth is absent from these shards (has_depth=False): only QP results are given"),
        "shards": list(table.shards),
        "groups": results,
    }


def correlation_table(result: dict[str, Any]) -> str:
    rows = []
    for name, g in result["groups"].items():
        pairs = [("QP", g["qp_vs_mse"])]
        if "depth_vs_mse" in g:
            pairs.append(("depth", g["depth_vs_mse"]))
        for label, c in pairs:
            if "undefined" in c:
                rows.append([name, f"{label} vs MSE", c["n"], f"undefined: {c['undefined']}",
                             None, None, None])
            else:
                ci = f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]"
                rows.append([name, f"{label} vs MSE", c["n"], c["pearson_r"], c["pearson_p"],
                             ci, c["spearman_rho"]])
    text = markdown_table(["group", "pair", "CTUs", "Pearson r", "p", "95% CI", "Spearman ρ"],
                          rows)
    if result["depth_note"]:
        text += "\n" + result["depth_note"]
    return text


def plot_correlation(table: CtuTable, result: dict[str, Any], path: Path) -> Path:
    """Scatter MSE against slice QP (and mean depth), coloured by nominal QP, with OLS lines."""
    plt = pyplot()
    panels = [("slice QP", table.slice_qp, "qp_vs_mse")]
    if table.has_depth:
        panels.append(("mean CU depth", table.mean_depth, "depth_vs_mse"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    qps = np.unique(table.nominal_qp)
    cmap = plt.get_cmap("viridis", max(len(qps), 2))
    for ax, (label, x, key) in zip(axes[0], panels, strict=True):
        jitter = 0.0
        if key == "qp_vs_mse":  # QP is discrete: spread the points a little to show density
            jitter = np.random.default_rng(0).uniform(-0.25, 0.25, table.n)
        for i, q in enumerate(qps):
            m = table.nominal_qp == q
            ax.scatter(x[m] + (jitter[m] if key == "qp_vs_mse" else 0), table.mse[m], s=6,
                       alpha=0.5, color=cmap(i), label=f"QP {int(q)}")
            _fit_line(ax, x[m], table.mse[m], cmap(i))
        c = result["groups"]["all"][key]
        title = f"{label} vs MSE: " + (f"r = {c['pearson_r']:.3f}" if "pearson_r" in c
                                       else "undefined")
        _fit_line(ax, x, table.mse, "black", dashed=True)
        ax.set_xlabel(label)
        ax.set_ylabel(f"CTU residual MSE ({table.bit_depth}-bit)")
        ax.set_title(title)
        ax.legend(fontsize=7, markerscale=2)
    if not table.has_depth:
        fig.text(0.5, -0.02, "depth absent (has_depth=False)", ha="center", fontsize=8)
    return save_figure(fig, path)


def _fit_line(ax, x, y, color, dashed: bool = False) -> None:
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or np.all(x == x[0]):
        return
    slope, icpt = np.polyfit(x, y, 1)
    xs = np.array([x.min(), x.max()])
    ax.plot(xs, slope * xs + icpt, color=color, lw=1.5, ls="--" if dashed else "-")


def _where(table: CtuTable) -> str:
    return table.shards[0] if len(table.shards) == 1 else (
        f"{len(table.shards)} shards in {Path(table.shards[0]).parent}")


def run_correlation(data: str | os.PathLike | Sequence[str | os.PathLike],
                    out_dir: str | os.PathLike, qps: Sequence[int] | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Load shards, correlate, write OUT/correlation.json and OUT/correlation.png.

    Returns the result dict with 'table' (the printed text) and the written 'files'.
    """
    table = load_ctu_table(data, qps, progress=progress)
    result = analyze_correlation(table)
    result["qp_filter"] = None if qps is None else sorted(set(qps))
    out = Path(out_dir)
    png = plot_correlation(table, result, out / "correlation.png")
    js = write_json(out / "correlation.json", result)
    result["table"] = correlation_table(result)
    result["files"] = [str(js), str(png)]
    return result


def run_correlation_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike
                          ) -> dict[str, Any]:
    """Demo stage: correlation analysis of the demo's shards; prints the table."""
    result = run_correlation(shard_dir, out_dir, progress=False)
    print(result["table"])
    return result
