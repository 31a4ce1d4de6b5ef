"""The demo's last page: OUT/summary.md and summary.png, every model's held-out gain side by
side."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_demo_summary(out: Path, models: dict[str, dict[str, Any]],
                       heldout: list[str]) -> Path:
    """OUT/summary.md and summary.png: per-QP held-out gain of each model, always on and
    with CTU switching, and their BD-rates. `models` maps a label to run_eval_stage's result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from codecnn.evaluate.bd import format_bd_rate
    from codecnn.evaluate.plots import format_gain
    from codecnn.io.atomic import save_figure_atomic, write_text_atomic

    qps = sorted({r["qp"] for m in models.values() for r in m["per_qp"]})
    lines = [f"# Demo summary: held-out {', '.join(heldout)} (never trained on)", "",
             "PSNR-Y gain in dB per QP, always on / with CTU switching; BD-rate by PCHIP.", "",
             "| model | " + " | ".join(f"QP {q}" for q in qps) + " | BD-rate | switched |",
             "|---|" + "---:|" * (len(qps) + 2)]
    for label, m in models.items():
        by_qp = {r["qp"]: r for r in m["per_qp"]}
        cells = [f"{by_qp[q]['gain']:+.4f} / {by_qp[q]['switch_gain']:+.4f}" if q in by_qp
                 else "" for q in qps]
        o = m["overall"]
        bd = [format_bd_rate(o.get(k)) for k in ("bd_rate_pchip", "switch_bd_rate_pchip")]
        lines.append(f"| {label} | " + " | ".join([*cells, *bd]) + " |")
    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = np.arange(len(qps))
    width = 0.8 / max(1, 2 * len(models))
    i = 0
    for label, m in models.items():
        by_qp = {r["qp"]: r for r in m["per_qp"]}
        for key, kind in (("gain", "always on"), ("switch_gain", "CTU switching")):
            vals = [by_qp[q].get(key) if q in by_qp else None for q in qps]
            xs = x + (i - (2 * len(models) - 1) / 2) * width
            # a missing value is no bar but "n/a"; a zero one a "0" label: never a 0.0 bar
            ax.bar(xs, [np.nan if v is None else v for v in vals], width,
                   label=f"{label}, {kind}")
            for xv, v in zip(xs, vals, strict=True):
                # upright labels: four bars per QP leave no room for side-by-side text
                ax.annotate(format_gain(v, 3), (xv, v or 0.0), ha="center", rotation=90,
                            va="bottom" if (v or 0.0) >= 0 else "top", fontsize=7,
                            color="0.4" if v is None else "black")
            i += 1
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [f"QP {q}" for q in qps])
    ax.set(ylabel="PSNR-Y gain (dB)", title="held-out gain per QP")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.25)  # room for the upright labels
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    fig.tight_layout()
    save_figure_atomic(fig, out / "summary.png", dpi=100)
    lines += ["", "![held-out gain per QP](summary.png)"]
    return write_text_atomic(out / "summary.md", "\n".join(lines))
