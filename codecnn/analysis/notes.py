"""The research notes' QP/depth correlation table, measured again and set beside theirs.

The notes this project grew from report, over CTUs of VVC-coded content, Pearson's r of the
CTU residual MSE with QP and with CU depth (over all QPs and at each CTC QP), and a Bayesian
search of w = a·QP + b·depth with b fixed to 1. `seed_correlation` measures the same rows on
one CtuTable (plus the closed-form optimum R and the search with a and b both free, which the
notes do not give) with `analyze_correlation` and `analyze_weights`, and
`seed_correlation_table` sets the two side by side. Depth is the mean CU depth of the CTU
(`ctu_data`); QP is the slice QP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.analysis.correlation import analyze_correlation
from codecnn.analysis.ctu_data import CtuTable
from codecnn.analysis.outputs import markdown_table, pyplot, save_figure, write_json
from codecnn.analysis.weights import analyze_weights

# The notes' numbers (Pearson r unless said), keyed like the rows below; None: not given.
NOTES = {
    "qp_mse": 0.55,
    "depth_mse_all": 0.19,
    "depth_mse_qp22": 0.54, "depth_mse_qp27": 0.40, "depth_mse_qp32": 0.56,
    "depth_mse_qp37": 0.67,
    "closed_form_r": None,
    "bo_free_a": None, "bo_free_b": None, "bo_free_r": None,
    "bo_b1_a": 0.329, "bo_b1_r": 0.675,
}
LABELS = {
    "qp_mse": "Pearson QP–MSE (all QPs)",
    "depth_mse_all": "Pearson depth–MSE (all QPs)",
    "closed_form_r": "closed form R (OLS of MSE on QP and depth)",
    "bo_free_a": "Bayesian opt., a and b free: a",
    "bo_free_b": "Bayesian opt., a and b free: b",
    "bo_free_r": "Bayesian opt., a and b free: r",
    "bo_b1_a": "Bayesian opt., b = 1: a",
    "bo_b1_r": "Bayesian opt., b = 1: r",
}


def _r(c: dict[str, Any]) -> float | None:
    return c.get("pearson_r")


def seed_correlation(table: CtuTable, init_points: int = 8, n_iter: int = 40,
                     seed: int = 0) -> dict[str, Any]:
    """Our value of every row of the notes' table, from one CtuTable with depth.

    Returns {"rows": [{"key", "measure", "ours", "notes", "n"}], "correlation": the
    analyze_correlation result, "weights": the analyze_weights result (without its BO
    sample points)}.
    """
    corr = analyze_correlation(table)
    weights = analyze_weights(table, init_points=init_points, n_iter=n_iter, seed=seed)
    groups = corr["groups"]
    ours: dict[str, tuple[float | None, int]] = {
        "qp_mse": (_r(groups["all"]["qp_vs_mse"]), groups["all"]["n"]),
        "depth_mse_all": (_r(groups["all"]["depth_vs_mse"]), groups["all"]["n"]),
    }
    for q in sorted(int(q) for q in np.unique(table.nominal_qp)):
        g = groups[f"QP{q}"]
        ours[f"depth_mse_qp{q}"] = (_r(g["depth_vs_mse"]), g["n"])
    n = table.n
    cf, free, b1 = weights["closed_form"], weights["bo_free"], weights["bo_b1"]
    ours.update({"closed_form_r": (cf["R"], n), "bo_free_a": (free["a"], n),
                 "bo_free_b": (free["b"], n), "bo_free_r": (free["corr"], n),
                 "bo_b1_a": (b1["a"], n), "bo_b1_r": (b1["corr"], n)})
    keys = ["qp_mse", "depth_mse_all"]
    keys += sorted({k for k in (*ours, *NOTES) if k.startswith("depth_mse_qp")},
                   key=lambda k: int(k[len("depth_mse_qp"):]))
    keys += ["closed_form_r", "bo_free_a", "bo_free_b", "bo_free_r", "bo_b1_a", "bo_b1_r"]
    rows = []
    for k in keys:
        value, count = ours.get(k, (None, 0))
        label = LABELS.get(k) or f"Pearson depth–MSE at QP {k[len('depth_mse_qp'):]}"
        rows.append({"key": k, "measure": label, "ours": value, "notes": NOTES.get(k),
                     "n": count})
    for w in (weights["bo_free"], weights["bo_b1"]):
        w.pop("points", None)
    return {"rows": rows, "correlation": corr, "weights": weights}


def seed_correlation_table(result: dict[str, Any]) -> str:
    """Markdown: measure, CTUs, ours, the notes', and the difference where both exist."""
    rows = []
    for r in result["rows"]:
        diff = None if r["ours"] is None or r["notes"] is None else r["ours"] - r["notes"]
        rows.append([r["measure"], r["n"] or None, r["ours"], r["notes"], diff])
    return markdown_table(["measure", "CTUs", "ours", "the notes", "ours − notes"], rows)


def plot_seed_correlation(result: dict[str, Any], path: str | os.PathLike,
                          title: str = "") -> Path:
    """The correlations (r) of both, as paired bars; the BO weights are left to the table."""
    plt = pyplot()
    rows = [r for r in result["rows"] if r["key"].endswith(("_mse", "_all", "_r"))
            or r["key"].startswith("depth_mse_qp")]
    labels = [r["measure"].replace("Pearson ", "").replace(" (OLS of MSE on QP and depth)", "")
              for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2), layout="constrained")
    ours = [np.nan if r["ours"] is None else r["ours"] for r in rows]
    notes = [np.nan if r["notes"] is None else r["notes"] for r in rows]
    ax.bar(x - 0.2, ours, 0.4, label="ours", color="tab:blue")
    ax.bar(x + 0.2, notes, 0.4, label="the notes", color="tab:orange")
    for i, r in enumerate(rows):
        if r["notes"] is None:
            ax.text(x[i] + 0.2, 0.01, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("correlation with CTU residual MSE (r)")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_title(title or "the notes' correlation table, measured again", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def write_seed_correlation(result: dict[str, Any], out_dir: str | os.PathLike,
                           depth_source: str) -> dict[str, Any]:
    """OUT/seed_correlation.{md,json,png}; returns the result with "table" and "files"."""
    from codecnn.io.atomic import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = seed_correlation_table(result)
    result = {**result, "depth_source": depth_source, "table": table}
    md = write_text_atomic(out / "seed_correlation.md",
                           f"# The notes' QP/depth correlation table\n\nDepth: {depth_source}."
                           f"\n\n{table}\n")
    js = write_json(out / "seed_correlation.json", result)
    png = plot_seed_correlation(result, out / "seed_correlation.png",
                                f"depth: {depth_source.split(' (')[0]}")  # no paths
    return {**result, "files": [str(md), str(js), str(png)]}
