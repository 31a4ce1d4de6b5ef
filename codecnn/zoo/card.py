"""A shipped model's card: what it is, how it was made, and what it gains on held-out content.

    NAME.pt    the weights and model config only (no optimizer state), loadable with
               weights_only=True like any checkpoint
    NAME.json  recipe (the exact command), corpus, steps, wall time and machine, kMAC/px,
               parameters, and per-QP / per-sequence gain and BD-rate on the held-out set,
               always on and with CTU switching; the held-out gain during training
    NAME.md    the same for people
    NAME.png   held-out gain against wall time, and per-QP gain always on vs switched

The numbers are those of `codecnn eval --model NAME.pt --switch ctu` on the held-out
manifests, run on the very file that ships.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.evaluate.bd import format_bd_rate
from codecnn.io.atomic import (
    atomic_output,
    save_figure_atomic,
    write_json_atomic,
    write_text_atomic,
)

# What the issue that asked for the zoo set as the bar for the shipped VVC model.
TARGET_BD_RATE = -2.5


def strip_checkpoint(src: Path, dst: Path) -> dict[str, Any]:
    """Write the shippable part of a training checkpoint (atomically); returns it."""
    import torch

    from codecnn import __version__
    from codecnn.models import read_checkpoint

    ckpt = read_checkpoint(src)
    data = ckpt.get("data") or {}
    slim = {
        "model_name": ckpt["model_name"],
        "model_config": ckpt["model_config"],
        "model_state": {k: v.detach().clone().float() for k, v in ckpt["model_state"].items()},
        "step": ckpt.get("step"),
        "best_metric": ckpt.get("best_metric"),
        "codecnn_version": __version__,
        # What eval checks (bit depth) and what the card names; no paths of this machine.
        "data": {k: data.get(k) for k in ("planes", "bit_depth", "border", "ctu_size")}
        | {"sequences": (data.get("train") or {}).get("sequences")},
    }
    with atomic_output(dst) as tmp:
        torch.save(slim, tmp)
    return slim


def machine() -> dict[str, Any]:
    """CPU model, cores and torch version of this machine (the card's 'where')."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}


def heldout_numbers(report: dict[str, Any]) -> dict[str, Any]:
    """Per QP, per sequence and overall held-out numbers from an eval report (switch=ctu)."""
    summary = report["summary"]
    per_qp = [{"qp": r["qp"], "gain_db": _r(r["gain"]), "switch_gain_db": _r(r.get("switch_gain")),
               "share_on": _r(r.get("share_on"))} for r in summary["per_qp"]]
    sequences: dict[str, Any] = {}
    for r in report["results"]:
        s = sequences.setdefault(r["source"], {"frames": r["frames"],
                                               "size": f"{r['width']}x{r['height']}",
                                               "per_qp": {}})
        s["per_qp"][str(r["qp"])] = {
            "psnr_rec": _r(r["psnr_rec"]), "psnr_filt": _r(r["psnr_filt"]),
            "gain_db": _r(r["gain"]), "switch_gain_db": _r(r["switch"]["gain"]),
            "bitrate_kbps": _r(r["bitrate_kbps"])}
    for name, s in summary["sequences"].items():
        sequences[name]["bd_rate_pchip"] = _r(s["filtered"]["pchip"]["bd_rate"])
        sequences[name]["switch_bd_rate_pchip"] = _r(s["switched"]["pchip"]["bd_rate"])
    o = summary["overall"]
    short = [f"{name} QP {qp} ({v['gain_db']:+.3f} dB)" for name, s in sequences.items()
             for qp, v in s["per_qp"].items() if v["gain_db"] <= 0]
    return {"per_qp": per_qp, "sequences": sequences,
            "gain_db": _r(o["gain"]), "switch_gain_db": _r(o.get("switch_gain")),
            "bd_rate_pchip": _r(o.get("bd_rate_pchip")),
            "switch_bd_rate_pchip": _r(o.get("switch_bd_rate_pchip")),
            "bd_sequences": o.get("bd_sequences"),
            "always_on_not_positive": short}


def _r(x, nd: int = 4):
    return None if x is None else round(float(x), nd)


def write_card(name: str, recipe, run: Path, heldout_dirs: list[str], out: Path,
               corpus_rec: dict[str, Any], command: list[str],
               train_summary: dict[str, Any] | None, seconds: float,
               stages: list[int] | None = None) -> dict[str, Any]:
    """Strip the best checkpoint, evaluate it on the held-out set, write the card files.
    `stages`: the step counts the run was trained to, in turn (Recipe.stages)."""
    import json

    from codecnn.evaluate import evaluate_manifests
    from codecnn.evaluate.compare import cumulative_elapsed
    from codecnn.evaluate.sequences import expand_manifests
    from codecnn.models import read_checkpoint
    from codecnn.train import load_run_config
    from codecnn.train.logs import read_csv, read_val_csv

    run = Path(run)
    out.mkdir(parents=True, exist_ok=True)
    best = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    weights = out / f"{name}.pt"
    slim = strip_checkpoint(best, weights)
    report = evaluate_manifests(weights, expand_manifests(heldout_dirs), out / "heldout",
                                switch="ctu", overwrite=True, progress=False,
                                command=["codecnn", "eval", "--model", f"zoo:{name}",
                                         "--switch", "ctu", "--manifest", *heldout_dirs])
    config = load_run_config(run)
    record = json.loads((run / "config.json").read_text())
    train_rows = read_csv(run / "train.csv")
    last = read_checkpoint(run / "last.pt")
    mon_rows = read_val_csv(run / "monitor.csv")
    monitor = [{"step": int(r["step"]), "elapsed_s": t, "qp": r["qp"], "gain_db": float(r["gain"])}
               for r, t in zip(mon_rows, cumulative_elapsed(mon_rows), strict=True)]
    train_elapsed = cumulative_elapsed(train_rows)
    sources = corpus_rec["sources"]
    val = set(config.val_sequences or ())
    card: dict[str, Any] = {
        "name": name,
        "description": recipe.description,
        "codec": recipe.codec, "config": recipe.config,
        "planes": list(slim["model_config"]["planes"]),
        "model_name": slim["model_name"], "model_config": slim["model_config"],
        "preset": config.preset,
        "params": report["model"]["params"],
        "kmac_per_pixel": report["model"]["kmac_per_pixel"],
        "recipe": {
            "command": " ".join(command),
            "train_config": config.to_dict(),
            "qp_loss_weights": record.get("resolved", {}).get("qp_loss_weights"),
            "stages": list(stages or [config.steps]),
        },
        "corpus": {
            "codec": corpus_rec["codec"], "config": corpus_rec["config"],
            "preset": corpus_rec["preset"], "qps": corpus_rec["qps"],
            "train_sources": [s["name"] for s in sources
                              if s["split"] == "train" and s["name"] not in val],
            "validation_sources": sorted(val),
            "heldout_sources": [s["name"] for s in sources if s["split"] == "heldout"],
            "table": corpus_rec["table"],
        },
        "training": {
            "steps": int(last["step"]), "best_step": slim["step"],
            "best_validation_gain_db": _r(slim["best_metric"]),
            "wall_time_s": train_elapsed[-1] if train_elapsed else None,
            "patches_per_s": _r(np.mean([float(r["patches_per_s"]) for r in train_rows]), 1)
            if train_rows else None,
            "machine": machine(),
            "resumed": train_summary is None or any(run.glob("config.resume-*.json")),
        },
        "started_from": _started_from(last.get("init_from")),
        "heldout": heldout_numbers(report),
        "heldout_during_training": monitor,
        "files": {k: str(out / f"{name}.{k}") for k in ("pt", "json", "md", "png")},
    }
    plot_card(card, out / f"{name}.png")
    write_text_atomic(out / f"{name}.md", card_markdown(card))
    write_json_atomic(out / f"{name}.json", card)
    return card


def _started_from(init_from: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the card says about the parent a fine-tuned model started from."""
    if not init_from:
        return None
    return {k: init_from.get(k) for k in ("path", "sha256", "step", "planes_added",
                                           "planes_dropped")}


def plot_card(card: dict[str, Any], path: Path) -> Path:
    """Left: held-out gain (monitor sample) against wall time; right: per-QP held-out gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    mon = card["heldout_during_training"]
    for qp in dict.fromkeys(r["qp"] for r in mon):
        rs = [r for r in mon if r["qp"] == qp]
        label = "mean over QPs" if qp == "all" else f"QP {qp}"
        ax1.plot([r["elapsed_s"] / 60 for r in rs], [r["gain_db"] for r in rs], marker="o",
                 ms=3, lw=2.5 if qp == "all" else 1.2, label=label)
    ax1.axhline(0, color="k", lw=0.6)
    ax1.set(xlabel="training wall time (min)", ylabel="PSNR-Y gain (dB)",
            title="held-out gain while training (fixed sample)")
    ax1.grid(alpha=0.3)
    if mon:
        ax1.legend(fontsize=8)
    rows = card["heldout"]["per_qp"]
    x = np.arange(len(rows))
    on = [r["gain_db"] for r in rows]
    sw = [r["switch_gain_db"] or 0.0 for r in rows]
    b1 = ax2.bar(x - 0.2, on, 0.4, label="always on")
    b2 = ax2.bar(x + 0.2, sw, 0.4, label="CTU switching")
    for bars, vals in ((b1, on), (b2, sw)):
        for bar, v in zip(bars, vals, strict=True):
            ax2.annotate(f"{v:+.3f}", (bar.get_x() + bar.get_width() / 2, v),
                         ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xticks(x, [f"QP {r['qp']}" for r in rows])
    ax2.set(ylabel="PSNR-Y gain (dB)", title="held-out gain per QP (all held-out sequences)")
    ax2.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{card['name']}: {card['description']}", fontsize=10)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


def _sequence_table(h: dict[str, Any]) -> list[str]:
    """The per-held-out-sequence table: always-on gain per QP, BD-rate, switched BD-rate."""
    qps = [str(r["qp"]) for r in h["per_qp"]]
    lines = ["| sequence | size | frames | " + " | ".join(f"QP {q}" for q in qps)
             + " | BD-rate | BD-rate switched |",
             "|---|---|---:|" + "---:|" * len(qps) + "---:|---:|"]
    for name, s in h["sequences"].items():
        cells = [f"{s['per_qp'][q]['gain_db']:+.4f}" if q in s["per_qp"] else "" for q in qps]
        bd = [format_bd_rate(s[k]) for k in ("bd_rate_pchip", "switch_bd_rate_pchip")]
        lines.append(f"| {name} | {s['size']} | {s['frames']} | " + " | ".join([*cells, *bd])
                     + " |")
    return lines


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: summary, held-out tables, recipe, corpus, training."""
    h = card["heldout"]
    t = card["training"]
    m = t["machine"]

    lines = [
        f"# zoo:{card['name']}",
        "",
        card["description"] + ".",
        "",
        f"- model: {card['model_name']} ({card['preset']}: "
        + ", ".join(f"{k}={v}" for k, v in card["model_config"].items()) + ")",
        f"- {card['params']:,} parameters, {card['kmac_per_pixel']:.1f} kMAC/px, "
        f"input planes {', '.join(card['planes'])}",
        f"- held-out BD-rate (PCHIP, luma): **{format_bd_rate(h['bd_rate_pchip'])}** always on, "
        f"**{format_bd_rate(h['switch_bd_rate_pchip'])}** with CTU switching "
        f"(target {TARGET_BD_RATE:+.1f} %)",
        f"- trained {t['steps']} steps (best validation at step {t['best_step']}) in "
        f"{(t['wall_time_s'] or 0) / 60:.0f} min on {m['cpu']} ({m['cores']} cores, "
        f"{m.get('torch_threads', m['cores'])} torch thread(s)"
        + (f", {m['gpu']}" if m["gpu"] else "") + f"), torch {m['torch']}",
        *([f"- started from `{card['started_from']['path']}` (step "
           f"{card['started_from']['step']}, sha256 {card['started_from']['sha256'][:12]}…"
           + (f"; its plane(s) {', '.join(card['started_from']['planes_dropped'])} dropped"
              if card["started_from"]["planes_dropped"] else "")
           + "); the time above is this fine-tuning only"]
          if card.get("started_from") else []),
        "",
        f"![held-out gain]({card['name']}.png)",
        "",
        "## Held-out gain per QP (mean over sequences)",
        "",
        "| QP | always on (dB) | CTU switching (dB) | CTUs on |",
        "|---:|---:|---:|---:|",
    ]
    for r in h["per_qp"]:
        lines.append(f"| {r['qp']} | {r['gain_db']:+.4f} | {r['switch_gain_db']:+.4f} | "
                     f"{100 * (r['share_on'] or 0):.0f} % |")
    lines += ["", "## Per held-out sequence (always-on gain in dB per QP, BD-rate)", "",
              *_sequence_table(h)]
    if h["always_on_not_positive"]:
        lines += ["", "**Where the always-on filter does not gain:** "
                  + "; ".join(h["always_on_not_positive"])
                  + ". CTU switching turns the filter off there (never below 0)."]
    else:
        lines += ["", "The always-on filter gains at every QP on every held-out sequence."]
    lines += ["", "## Recipe", "", "Rebuild from nothing (corpus, training, this card):", "",
              "```", card["recipe"]["command"], "```", "",
              "Training configuration (`codecnn train` fields):", "", "```"]
    cfg = card["recipe"]["train_config"]
    lines += [f"{k} = {v}" for k, v in cfg.items() if k not in ("data", "monitor")]
    stages = card["recipe"].get("stages") or []
    schedule = ([f"Trained to step {stages[0]} (cosine over {stages[0]} steps), then resumed "
                 "to " + ", then ".join(map(str, stages[1:])) + " (`codecnn train --resume "
                 "RUN --steps N`: the cosine stretches from there, a warm restart at a "
                 "fraction of the learning rate).", ""] if len(stages) > 1 else [])
    corpus = card["corpus"]
    lines += ["```", "", *schedule,
              "Per-QP loss weights (1 / error energy, mean 1): "
              f"{card['recipe']['qp_loss_weights']}",
              "", "## Corpus", "",
              f"{corpus['codec'].upper()} {corpus['config'].upper()}, encoder preset "
              f"{corpus['preset']}, QP {', '.join(map(str, corpus['qps']))}.",
              f"Training sources: {', '.join(card['corpus']['train_sources'])}.",
              f"Validation (checkpoint choice, training sources' own split): "
              f"{', '.join(card['corpus']['validation_sources'])}.",
              f"Held out (never trained on, never used to choose): "
              f"{', '.join(card['corpus']['heldout_sources'])}.", "",
              card["corpus"]["table"], ""]
    return "\n".join(lines)
