"""`codecnn reproduce`: the research notes' RDN and correlation tables, and the families at
one budget.

    reproduce_seed_rdn("corpus", "repro/seed-rdn")   # rdn-s, rdn-m, rdn-ds vs the notes
    reproduce_budget("corpus", "repro/budget-30")    # every family at 30 kMAC/px
    reproduce_seed_correlation("corpus", "repro/seed-correlation")  # QP/depth vs MSE

The first two build (or complete) the corpus (`codecnn corpus`), train every variant on the same
training shards with the same steps (a finished run is kept, an interrupted one resumes),
evaluate each on the held-out set always on and with CTU switching, and end in `codecnn
compare`'s table and plot (OUT/compare/). A variant's run is OUT/NAME/ and its held-out
report OUT/NAME/heldout/, so `codecnn compare OUT/NAME ...` works on them as well.

The default size is for a 2-core CPU (about 2 hours, an estimate from measured step times,
see CPU_NOTE) and trains on the HEVC corpus (`codec=` to choose); `full=True` is the GPU size,
on VVC. The third trains nothing: it builds the corpus
with CU depth (VVC through VTM when a VTM decoder is configured, else HEVC) and measures the
notes' QP/depth correlations and Bayesian weights on it (minutes).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codecnn.errors import CodecnnError

# The research notes' mean PSNR-Y gains on VVC (the notes this project grew from).
NOTES_DB = {"rdn-s": 0.15, "rdn-m": 0.20, "rdn-ds": 0.08}
FAMILIES = ("rdn", "resnet", "imdn", "rcan", "mobile", "lop")
HELDOUT_STILLS = ("chelsea", "rocket", "hubble_deep_field", "retina")
VAL_SOURCES = ("coffee", "gravel")  # validation for checkpoint choice: training sources


@dataclass(frozen=True)
class Size:
    """How big a reproduction is: training settings shared by every variant, and which
    held-out sources it is evaluated on (None: all of them)."""

    steps: int
    batch_size: int
    crop: int | None
    lr: float
    val_every: int
    heldout: tuple[str, ...] | None
    cpu: bool
    codec: str


# Step times measured on the project's 2-core CPU (fp32, channels_last, 64×64 crops): at
# batch 16 rdn-s about 1.8-3.6 s, rdn-m 3.8-7.5 s, rdn-ds 2.0-4.0 s (the higher figures with
# other work on the machine), about twice that at batch 32 (11 s for the three); at batch 64
# the 30 kMAC/px families 0.25 s (lop) to 1.5 s (mobile), 4.9 s for all six, plus loading.
# With the held-out stills the defaults below come to about 2 hours once the corpus is built.
# The held-out clip (bigbuckbunny, 32 frames of 1280×720) is left to --full: at rdn-m's 523
# kMAC/px it alone would take longer on the CPU than the training.
#
# The CPU size trains on the HEVC corpus. Trained from scratch on VVC, nothing learns in
# CPU-sized runs: the budget families at 600 steps (batch 16) stayed at the identity
# (validation gain -0.0007 dB), as the zoo recipe did in 4,000 steps (see zoo/recipes.py);
# VVC's in-loop filters leave an error close to white. On HEVC the zoo recipe gains from
# step 1,000 on. So a CPU comparison on VVC would rank noise.
CPU_NOTE = ("sized for about 2 hours on 2 CPU cores (an estimate from measured step times; "
            "held-out stills only)")
CODEC_NOTE = {"hevc": "trained on HEVC, where networks learn from scratch within CPU hours "
                      "(on VVC they stay at the identity); use --full on a GPU for VVC",
              "vvc": "trained on VVC: CPU-sized runs from scratch have stayed at the "
                     "identity there, so expect gains near 0"}
SEED_RDN = {"cpu": Size(500, 32, 64, 1e-3, 250, HELDOUT_STILLS, True, "hevc"),
            "full": Size(40000, 32, None, 5e-4, 2000, None, False, "vvc")}
BUDGET = {"cpu": Size(1000, 64, 64, 2e-3, 500, HELDOUT_STILLS, True, "hevc"),
          "full": Size(40000, 32, None, 1e-3, 2000, None, False, "vvc")}


def _train_settings(size: Size, device: str) -> dict[str, Any]:
    """TrainConfig fields shared by every variant (the zoo's CPU recipe where it applies)."""
    common = {"steps": size.steps, "batch_size": size.batch_size, "crop": size.crop,
              "lr": size.lr, "val_every": size.val_every, "log_every": 10,
              "sampling": "balanced", "dihedral": True, "qp_weighting": "sqrt", "seed": 0,
              "device": device}
    if size.cpu:
        common.update({"amp": "off", "channels_last": True, "workers": 1, "in_memory": True})
    return common


def _corpus(corpus: str | os.PathLike, codec: str, only: tuple[str, ...] | None, jobs: int,
            wallpapers: bool, echo) -> tuple[Path, dict[str, Any]]:
    from codecnn.corpus import build_corpus, corpus_dir

    echo(f"== corpus ({codec}-ai; resumable) ==")
    rec = build_corpus(corpus, codec=codec, config="ai", jobs=jobs, wallpapers=wallpapers,
                       only=only)
    echo(rec["table"])
    return corpus_dir(corpus, codec, "ai"), rec


def _split(root: Path, rec: dict[str, Any], size: Size) -> tuple[list[str], list[str], tuple]:
    """(training shard files, held-out coded-sequence dirs, validation sources)."""
    train = [s["name"] for s in rec["sources"] if s["split"] == "train"]
    held = [s["name"] for s in rec["sources"] if s["split"] == "heldout"
            and (size.heldout is None or s["name"] in size.heldout)]
    if not train or not held:
        raise CodecnnError(f"{root}: the corpus needs training and held-out sources (have "
                           f"train: {', '.join(train) or 'none'}; held out: "
                           f"{', '.join(held) or 'none'})")
    root = root.resolve()  # absolute: a rerun from elsewhere finds the same run config
    shards = sorted(str(p) for name in train
                    for p in (root / "shards" / "train").glob(f"{name}_qp*.h5"))
    val = tuple(v for v in VAL_SOURCES if v in train)
    return shards, [str(root / "coded" / n) for n in held], (val if len(val) < len(train)
                                                             else ())


def _train_and_eval(name: str, config, out: Path, heldout: list[str], command: list[str],
                    echo, progress: bool) -> Path:
    """Train (or resume, or keep) OUT/NAME and evaluate it on the held-out set with CTU
    switching (kept when newer than its checkpoint). Returns the report directory."""
    from codecnn.evaluate import evaluate_manifests
    from codecnn.zoo.recipes import _train

    run = out / name
    echo(f"== {name}: train ({config.steps} steps) -> {run} ==")
    _train(config, run, command)
    report = run / "heldout"
    best = run / "best.pt"
    if (report / "report.json").is_file() and \
            (report / "report.json").stat().st_mtime >= best.stat().st_mtime:
        echo(f"== {name}: held-out report kept ({report}) ==")
        return report
    echo(f"== {name}: held-out evaluation ==")
    evaluate_manifests(best, heldout, report, switch="ctu", device=config.device
                       if config.device != "auto" else None, overwrite=True, command=command,
                       progress=progress)
    return report


def _run_all(variants: dict[str, dict[str, Any]], corpus, out_dir, size: Size, device: str,
             only, jobs: int, wallpapers: bool, command: list[str] | None, echo,
             progress: bool) -> dict[str, Any]:
    from codecnn.evaluate.compare import compare
    from codecnn.train import TrainConfig

    t0 = time.perf_counter()
    out = Path(out_dir)
    root, rec = _corpus(corpus, size.codec, only, jobs, wallpapers, echo)
    shards, heldout, val = _split(root, rec, size)
    base = _train_settings(size, device)
    command = command or sys.argv
    reports = {}
    for name, model in variants.items():
        try:
            config = TrainConfig(data=tuple(shards), val_sequences=val or None,
                                 **{**base, **model})
        except ValueError as e:
            raise CodecnnError(f"{name}: {e}") from None
        reports[name] = _train_and_eval(name, config, out, heldout, command, echo, progress)
    c = compare([str(r) for r in reports.values()], out / "compare", overwrite=True)
    c["seconds"] = round(time.perf_counter() - t0, 1)
    return c


def reproduce_seed_rdn(corpus: str | os.PathLike = "corpus",
                       out_dir: str | os.PathLike = "repro/seed-rdn", full: bool = False,
                       steps: int | None = None, batch_size: int | None = None,
                       crop: int | None = None, codec: str | None = None,
                       only: tuple[str, ...] | None = None,
                       device: str = "auto", jobs: int = 2, wallpapers: bool = True,
                       shrink: dict[str, Any] | None = None,
                       command: list[str] | None = None, echo=print,
                       progress: bool = True) -> dict[str, Any]:
    """Train rdn-s, rdn-m and rdn-ds alike, evaluate them on the held-out set, and set our
    per-QP gains beside the notes'. `shrink` (model fields, e.g. features=8) makes every
    variant smaller alike (tests). Returns compare's record plus "notes" (lines)."""
    size = _sized(SEED_RDN["full" if full else "cpu"], steps, batch_size, crop, codec)
    if size.cpu:
        echo(f"reproduce seed-rdn: {CPU_NOTE}; {CODEC_NOTE[size.codec]}")
    variants = {p: {"preset": p, "model_overrides": dict(shrink or {})} for p in NOTES_DB}
    c = _run_all(variants, corpus, out_dir, size, device, only, jobs, wallpapers, command,
                 echo, progress)
    c["notes"] = notes_lines(c)
    for line in c["notes"]:
        echo(line)
    return c


def reproduce_budget(corpus: str | os.PathLike = "corpus",
                     out_dir: str | os.PathLike = "repro/budget", budget_kmac: float = 30.0,
                     families: tuple[str, ...] = FAMILIES, full: bool = False,
                     steps: int | None = None, batch_size: int | None = None,
                     crop: int | None = None, codec: str | None = None,
                     only: tuple[str, ...] | None = None,
                     device: str = "auto", jobs: int = 2, wallpapers: bool = True,
                     command: list[str] | None = None, echo=print,
                     progress: bool = True) -> dict[str, Any]:
    """Every family sized to `budget_kmac` kMAC/px, trained alike, compared on held-out
    BD-rate. Returns compare's record."""
    from codecnn.models import MODELS

    unknown = [f for f in families if f not in MODELS]
    if unknown:
        raise CodecnnError(f"unknown family {unknown[0]!r} (known: {', '.join(MODELS)})")
    size = _sized(BUDGET["full" if full else "cpu"], steps, batch_size, crop, codec)
    if size.cpu:
        echo(f"reproduce budget: {CPU_NOTE}; {CODEC_NOTE[size.codec]}")
    variants = {f"{f}-{budget_kmac:g}k": {"preset": f, "budget_kmac": float(budget_kmac)}
                for f in families}
    return _run_all(variants, corpus, out_dir, size, device, only, jobs, wallpapers, command,
                    echo, progress)


def _sized(size: Size, steps: int | None, batch_size: int | None, crop: int | None,
           codec: str | None) -> Size:
    kw: dict[str, Any] = {}
    if codec is not None:
        if codec not in ("vvc", "hevc"):
            raise CodecnnError(f"codec must be vvc or hevc, got {codec!r}")
        kw["codec"] = codec
    if steps is not None:
        kw["steps"] = steps
        kw["val_every"] = max(1, min(size.val_every, steps))
    if batch_size is not None:
        kw["batch_size"] = batch_size
    if crop is not None:
        kw["crop"] = crop
    return replace(size, **kw)


def notes_lines(c: dict[str, Any]) -> list[str]:
    """Our gains beside the notes', and whether the order of the three matches (by how
    much it differs when it does not)."""
    ours = {e["label"]: e for e in c["entries"]}
    qps = c["qps"]
    lines = ["| variant | kMAC/px | notes (dB) | ours mean (dB) | "
             + " | ".join(f"QP{q} (dB)" for q in qps) + " | BD-rate (%) |",
             "|---|---:|---:|---:|" + "---:|" * len(qps) + "---:|"]
    for name, note in NOTES_DB.items():
        e = ours[name]
        by_qp = {r["qp"]: r["gain"] for r in e["per_qp"]}
        cells = " | ".join("–" if by_qp.get(q) is None else f"{by_qp[q]:+.4f}" for q in qps)
        bd = "–" if e["bd_rate"] is None else f"{e['bd_rate']:+.2f}"
        lines.append(f"| {name} | {e['kmac_per_pixel']:.1f} | {note:+.2f} | "
                     f"{e['gain']:+.4f} | {cells} | {bd} |")
    notes_order = sorted(NOTES_DB, key=NOTES_DB.get, reverse=True)
    our_order = sorted(NOTES_DB, key=lambda n: ours[n]["gain"], reverse=True)
    pairs = [f"{a} − {b}: ours {ours[a]['gain'] - ours[b]['gain']:+.4f} dB, notes "
             f"{NOTES_DB[a] - NOTES_DB[b]:+.2f} dB"
             for a, b in zip(notes_order, notes_order[1:], strict=False)]
    if our_order == notes_order:
        lines.append(f"order matches the notes ({' > '.join(notes_order)}); margins: "
                     + "; ".join(pairs))
    else:
        lines.append(f"order does NOT match the notes: ours {' > '.join(our_order)}, notes "
                     f"{' > '.join(notes_order)}; " + "; ".join(pairs))
    return lines


def reproduce_seed_correlation(corpus: str | os.PathLike = "corpus",
                               out_dir: str | os.PathLike = "repro/seed-correlation",
                               vtm_decoder: str | os.PathLike | None = None,
                               only: tuple[str, ...] | None = None, jobs: int = 2,
                               wallpapers: bool = True, init_points: int = 8,
                               n_iter: int = 40, echo=print,
                               progress: bool = True) -> dict[str, Any]:
    """The notes' QP/depth correlation table on the corpus, beside the notes' numbers.

    Depth comes from VVC itself when a VTM decoder is configured (`vtm_decoder`, else
    $CODECNN_VTM_DECODER): the vvc-ai corpus, its coded sequences given VTM's depth planes
    (`codecnn.codec.vtm`). Without one it comes from HEVC (the hevc-ai corpus, libde265's
    depth), and the result says so. Every shard of the corpus (training and held-out) is
    used. Writes OUT/seed_correlation.{md,json,png}; returns the result with "table",
    "depth_source" and "files".
    """
    from codecnn.analysis.ctu_data import load_ctu_table
    from codecnn.analysis.notes import seed_correlation, write_seed_correlation
    from codecnn.codec.vtm import find_vtm_decoder
    from codecnn.corpus import build_corpus, corpus_dir

    decoder = find_vtm_decoder(vtm_decoder)
    if decoder is not None:
        codec = "vvc"
        source = f"VVC, VTM DecoderApp block statistics (Depth = QT + MTT depth; {decoder})"
    else:
        codec = "hevc"
        source = ("HEVC, libde265 (no VTM decoder configured: --vtm-decoder or "
                  "$CODECNN_VTM_DECODER for VVC depth)")
    echo(f"reproduce seed-correlation: depth from {source}")
    echo(f"== corpus ({codec}-ai; resumable) ==")
    rec = build_corpus(corpus, codec=codec, config="ai", jobs=jobs, wallpapers=wallpapers,
                       only=only, progress=progress,
                       **({"vtm_decoder": decoder} if decoder is not None else {}))
    echo(rec["table"])
    root = corpus_dir(corpus, codec, "ai")
    shards = sorted(str(p) for s in rec["sources"]
                    for p in (root / "shards" / s["split"]).glob(f"{s['name']}_qp*.h5"))
    if not shards:
        raise CodecnnError(f"{root}: no shards")
    table = load_ctu_table(shards, progress=progress,
                           require_depth="the notes' table needs CU depth")
    result = seed_correlation(table, init_points=init_points, n_iter=n_iter)
    result = write_seed_correlation({**result, "corpus": str(root),
                                     "sources": [s["name"] for s in rec["sources"]]},
                                    out_dir, source)
    echo(result["table"])
    return result
