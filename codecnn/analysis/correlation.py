"""How the CTU residual MSE relates to QP and CU depth: Pearson (p, 95 % CI) and Spearman.

Per CTU: the MSE of orig − rec over the valid area, the slice QP and the mean CU depth.
Results over all CTUs and per nominal QP. Within one nominal QP of an All-Intra sequence the
slice QP is constant, so QP-vs-MSE there is reported as undefined (with the reason), never
as NaN. A data set without depth gives the QP results and says that depth is absent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.analysis.ctu_data import CtuTable, load_ctu_table
from codecnn.analysis.outputs import markdown_table, pyplot, save_figure, write_json
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


def pearson_r(x, y) -> float:
    """Pearson's r alone (scipy.stats.pearsonr), for the weight search's many evaluations."""
    from scipy import stats

    return float(stats.pearsonr(np.asarray(x, np.float64), np.asarray(y, np.float64)).statistic)


def pearson(x, y, confidence: float = 0.95, names: tuple[str, str] = ("x", "y")) -> Pearson:
    """Pearson r, two-sided p-value and Fisher-z confidence interval (needs n ≥ 4), by
    scipy.stats.pearsonr."""
    from scipy import stats

    x, y = _check_pair(x, y, 4, names)
    result = stats.pearsonr(x, y)
    ci = result.confidence_interval(confidence_level=confidence)
    return Pearson(float(result.statistic), float(result.pvalue), float(ci.low), float(ci.high),
                   int(x.size))


def spearman(x, y, names: tuple[str, str] = ("x", "y")) -> Spearman:
    """Spearman's rho (Pearson on average ranks) and its two-sided p-value (n ≥ 3), by
    scipy.stats.spearmanr."""
    from scipy import stats

    x, y = _check_pair(x, y, 3, names)
    result = stats.spearmanr(x, y)
    return Spearman(float(result.statistic), float(result.pvalue), int(x.size))


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
    """correlation_figure saved as PNG."""
    return save_figure(correlation_figure(table, result), path)


NOMINAL_MARKERS = "osD^vP*Xhp"


def correlation_figure(table: CtuTable, result: dict[str, Any]):
    """MSE against slice QP (and mean depth): colour = slice QP, marker = nominal QP.

    The colour is the QP the CTU was really coded with, so Random Access pictures coded at a
    higher slice QP than their nominal QP are coloured as such, and each nominal QP's legend
    entry gives its slice QP range. Lines are fitted only where one slice QP is held fixed
    (depth vs MSE per slice QP) and, against slice QP, the least-squares line over all
    CTUs whose r is in the title; never a line across the CTUs of one nominal QP, nor a depth
    line across QPs (where QP, not depth, would set its slope).
    """
    from matplotlib.colors import BoundaryNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    panels = [("slice QP", table.slice_qp, "qp_vs_mse")]
    if table.has_depth:
        panels.append(("mean CU depth", table.mean_depth, "depth_vs_mse"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels) + 1.0, 4.6),
                             squeeze=False, layout="constrained")
    slice_qps = np.unique(table.slice_qp)
    bounds = np.concatenate([slice_qps - 0.5, [slice_qps[-1] + 0.5]])
    cmap = plt.get_cmap("viridis", len(slice_qps))
    norm = BoundaryNorm(bounds, cmap.N)
    nominal = np.unique(table.nominal_qp)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.25, 0.25, table.n)  # QP is discrete: spread points to show density
    for ax, (label, x, key) in zip(axes[0], panels, strict=True):
        xs = x + jitter if key == "qp_vs_mse" else x
        for i, q in enumerate(nominal):
            m = table.nominal_qp == q
            ax.scatter(xs[m], table.mse[m], s=9, alpha=0.6, c=table.slice_qp[m], cmap=cmap,
                       norm=norm, marker=NOMINAL_MARKERS[i % len(NOMINAL_MARKERS)], lw=0)
        if key == "qp_vs_mse":  # the mean per slice QP, for the trend inside the cloud
            means = [table.mse[table.slice_qp == s].mean() for s in slice_qps]
            ax.plot(slice_qps, means, "_", color="black", ms=16, mew=2,
                    label="mean per slice QP")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            for s in slice_qps:  # depth at one fixed slice QP
                m = table.slice_qp == s
                if m.sum() >= 10:
                    _fit_line(ax, x[m], table.mse[m], cmap(norm(s)))
        c = result["groups"]["all"][key]
        r = f"r = {c['pearson_r']:.3f}" if "pearson_r" in c else "r undefined"
        if key == "qp_vs_mse":
            _fit_line(ax, x, table.mse, "black", dashed=True,
                      label=f"least squares, all CTUs ({r})")
        ax.set_xlabel(label)
        ax.set_ylabel(f"CTU residual MSE (orig − rec, {table.bit_depth}-bit samples²)")
        ax.set_title(f"{label} vs MSE, all {table.n} CTUs: {r}", fontsize=10)
        handles = [Line2D([], [], ls="", marker=NOMINAL_MARKERS[i % len(NOMINAL_MARKERS)],
                          color="0.35", label=_nominal_label(table, q))
                   for i, q in enumerate(nominal)]
        extra, names = ax.get_legend_handles_labels()
        ax.legend(handles + extra, [h.get_label() for h in handles] + names, fontsize=7,
                  markerscale=1.3, loc="upper left")
    if len(panels) == 2:
        axes[0][1].text(0.99, 0.01, "coloured lines: least squares at one slice QP",
                        transform=axes[0][1].transAxes, ha="right", va="bottom", fontsize=7,
                        color="0.3")
    cb = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(),
                      label="slice QP (colour)", shrink=0.9)
    step = max(1, int(np.ceil(len(slice_qps) / 12)))
    cb.set_ticks(slice_qps[::step])
    if not table.has_depth:
        fig.text(0.5, -0.02, "depth absent (has_depth=False)", ha="center", fontsize=8)
    return fig


def _nominal_label(table: CtuTable, q) -> str:
    s = table.slice_qp[table.nominal_qp == q]
    lo, hi = int(s.min()), int(s.max())
    same = f"slice QP {lo}" if lo == hi else f"slice QP {lo}–{hi} (offset {lo - q:+d}…{hi - q:+d})"
    return f"nominal QP {int(q)}: {same}"


def _fit_line(ax, x, y, color, dashed: bool = False, label: str | None = None) -> None:
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or np.all(x == x[0]):
        return
    slope, icpt = np.polyfit(x, y, 1)
    xs = np.array([x.min(), x.max()])
    ax.plot(xs, slope * xs + icpt, color=color, lw=1.5, ls="--" if dashed else "-",
            label=label)


def _where(table: CtuTable) -> str:
    return table.shards[0] if len(table.shards) == 1 else (
        f"{len(table.shards)} shards in {Path(table.shards[0]).parent}")


def correlation_report(data: str | os.PathLike | Sequence[str | os.PathLike],
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
