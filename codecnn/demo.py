"""`codecnn demo`: the whole flow on sample content that ships with the dependencies.

encode (real VVenC or x265, four QPs) → the shipped model (codecnn zoo) on the held-out clip
→ extract (HDF5 shards) → train (a short RDN run) → eval (PSNR-Y gain per QP and BD-rate on
the same held-out clip) → analyze (QP/depth correlation; with HEVC's real depth also the
Bayesian weighting) → one summary of both models. Each stage is one library function; this
module only chains them and says where each result is.

The held-out clip is bigbuckbunny from frame 100 at full size: part of the zoo's held-out
set, so neither the shipped model nor the demo's own run has seen it.

The default run is small enough for a 2-core CPU (a few minutes). `full=True` (with a GPU)
codes more frames at full sample size and trains the `rdn-s` preset for longer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# (sample, scale (w, h) or None, coded name). Training data and the held-out clip differ.
TRAIN_SOURCES = (("carphone_pristine", None, "carphone"), ("bikes", None, "bikes"))
DEMO_STEPS = 500  # about 4 minutes on 2 CPU cores with the demo's reduced rdn-s
HELDOUT_SOURCES = (("bigbuckbunny", None, "bigbuckbunny", "between(n,100,131)"),)
FULL_TRAIN_SOURCES = TRAIN_SOURCES
FULL_HELDOUT_SOURCES = HELDOUT_SOURCES
# The shipped model the demo shows first, per codec.
ZOO_MODELS = {"vvc": "rdn-vvc-ai", "hevc": "rdn-hevc-ai-depth"}


def _stage(echo, n: int, name: str) -> float:
    echo(f"\n== {n}. {name} ==")
    return time.perf_counter()


def run_demo(out_dir: str | os.PathLike, codec: str = "vvc", device: str = "cpu",
             full: bool = False, ffmpeg: str | os.PathLike | None = None,
             echo=print, frames: int | None = None, steps: int | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Run every demo stage into `out_dir`; returns each stage's summary by name.

    frames/steps override the frames coded per source and the training steps (the tests run
    the whole chain with a single frame and a few steps).
    """
    from codecnn.analysis.correlation import run_correlation_stage
    from codecnn.codec.stage import run_encode_stage
    from codecnn.errors import CodecnnError
    from codecnn.evaluate import run_eval_stage
    from codecnn.evaluate.api import pick_device
    from codecnn.extract.run import run_extract_stage
    from codecnn.train.demo import run_train_stage

    pick_device(device)  # a missing GPU is an error before any work, not after the encodes
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CodecnnError(f"{out}: exists and is not empty (an earlier demo?); give another "
                           f"-o or --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    frames = frames or (32 if full else 8)
    steps = steps or (5000 if full else DEMO_STEPS)
    train_sources = FULL_TRAIN_SOURCES if full else TRAIN_SOURCES
    heldout_sources = FULL_HELDOUT_SOURCES if full else HELDOUT_SOURCES
    results: dict[str, Any] = {}

    _stage(echo, 1, f"encode ({codec.upper()}, All Intra, QP 22/27/32/37)")
    if codec == "hevc":
        from codecnn.codec.hevc_stage import run_hevc_encode_stage

        enc = run_hevc_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo,
                                    sources=train_sources + heldout_sources)
    else:
        enc = run_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo, codec=codec,
                               sources=train_sources + heldout_sources)
    heldout_names = {src[2] for src in heldout_sources}
    train_manifests = [m for m in enc["manifests"] if Path(m).parents[2].name
                       not in heldout_names]
    heldout_manifests = [m for m in enc["manifests"] if Path(m).parents[2].name
                         in heldout_names]
    results["encode"] = enc

    from codecnn.zoo import list_zoo

    zoo_name = ZOO_MODELS[codec]
    _stage(echo, 2, f"the shipped model zoo:{zoo_name} on the held-out clip")
    if zoo_name in list_zoo():
        results["zoo"] = run_eval_stage(f"zoo:{zoo_name}", heldout_manifests,
                                        out / "report_zoo", switch="ctu", device=device)
    else:
        echo(f"zoo:{zoo_name} is not shipped in this checkout; skipped "
             f"(`codecnn zoo train {zoo_name} --install` builds it)")

    _stage(echo, 3, "extract (132×132 CTU patches → HDF5 shards)")
    shard_dir = out / "shards"
    results["extract"] = run_extract_stage(train_manifests, shard_dir, jobs=2)

    _stage(echo, 4, "train (RDN on the extracted shards)")
    if full:
        train = run_train_stage(shard_dir, out / "run", steps=steps, preset="rdn-s",
                                batch_size=32, model_overrides={}, device=device,
                                val_every=max(1, steps // 10))
    else:
        train = run_train_stage(shard_dir, out / "run", steps=steps, device=device,
                                val_every=max(1, steps // 5))
    results["train"] = train

    _stage(echo, 5, "eval (held-out clip: " + ", ".join(sorted(heldout_names)) + ")")
    results["eval"] = run_eval_stage(train["checkpoint"], heldout_manifests, out / "report",
                                     switch="ctu", device=device)

    _stage(echo, 6, "analyze (QP/depth vs coding error)")
    analysis_dir = out / "analysis"
    results["correlation"] = run_correlation_stage(shard_dir, analysis_dir)
    if codec == "hevc":
        from codecnn.analysis.weights import run_weights_stage

        results["weights"] = run_weights_stage(shard_dir, analysis_dir)

    models = {"demo run (" + f"{train['step']} steps here)": results["eval"]}
    if "zoo" in results:
        models = {f"zoo:{zoo_name} (shipped)": results["zoo"], **models}
    summary_md = write_demo_summary(out, models, sorted(heldout_names))
    echo("\n" + summary_md.read_text())

    minutes = (time.perf_counter() - t_start) / 60
    echo(f"\n== done in {minutes:.1f} min ==")
    echo(f"coded sequences and RD table: {Path(enc['manifests'][0]).parents[3]}")
    echo(f"shards:                       {shard_dir}")
    echo(f"training run (checkpoints):   {out / 'run'}")
    echo(f"summary (both models):        {summary_md}")
    if "zoo" in results:
        echo(f"shipped model's report:       {out / 'report_zoo' / 'report.md'}")
    echo(f"demo run's report:            {out / 'report' / 'report.md'}")
    echo(f"analyses:                     {analysis_dir}")
    return results


def write_demo_summary(out: Path, models: dict[str, dict[str, Any]],
                       heldout: list[str]) -> Path:
    """OUT/summary.md and summary.png: per-QP held-out gain of each model, always on and
    with CTU switching, and their BD-rates. `models` maps a label to run_eval_stage's result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from codecnn.evaluate.plots import format_gain
    from codecnn.io.atomic import save_figure_atomic, write_text_atomic

    def pct(x):
        return "n/a" if x is None else f"{x:+.2f} %"

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
        lines.append(f"| {label} | " + " | ".join(cells)
                     + f" | {pct(o.get('bd_rate_pchip'))} | {pct(o.get('switch_bd_rate_pchip'))} |")
    fig, ax = plt.subplots(figsize=(7, 3.8))
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
                ax.annotate(format_gain(v, 3), (xv, v or 0.0), ha="center",
                            va="bottom" if (v or 0.0) >= 0 else "top", fontsize=7,
                            color="0.4" if v is None else "black")
            i += 1
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [f"QP {q}" for q in qps])
    ax.set(ylabel="PSNR-Y gain (dB)", title="held-out gain per QP")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, out / "summary.png", dpi=100)
    lines += ["", "![held-out gain per QP](summary.png)"]
    return write_text_atomic(out / "summary.md", "\n".join(lines))
