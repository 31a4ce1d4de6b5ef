"""Validation gain per QP of a trained filter in fp32 and under bf16 autocast, side by side.

    PYTHONPATH=. python tools/bench_precision.py                  # CPU, zoo:rdn-hevc-ai-depth
    PYTHONPATH=. python tools/bench_precision.py --device cuda    # the same on a GPU
    PYTHONPATH=. python tools/bench_precision.py --model RUN/best.pt --data SHARDS

Scores the model exactly as training validates it (codecnn.train.loop.evaluate: rec +
residual rounded and clipped, PSNR-Y per picture, then per sequence, then per QP), once in
fp32 and once under bf16 autocast (`--amp bf16`, the default on CUDA), on the same patches,
and prints a Markdown table of the two gains and their difference per nominal QP. The models'
head runs in fp32 under autocast (codecnn.models.common.run_head), so the 10-bit input is
not rounded to bf16; what remains is the body's bf16 arithmetic.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from codecnn.datasets import ShardDataset  # noqa: E402
from codecnn.models import load_model  # noqa: E402
from codecnn.train.loop import evaluate, monitor_subset, validation_loader  # noqa: E402

HELDOUT = Path("/work/data/corpus/hevc-ai/shards/heldout")


def gains(model: torch.nn.Module, ds, device: torch.device, amp: bool,
          batch: int) -> tuple[list[dict], float]:
    """(evaluate's rows, seconds) for one precision."""
    t0 = time.perf_counter()
    rows = evaluate(model, validation_loader(ds, batch), device, amp=amp,
                    channels_last=device.type == "cuda")
    return rows, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="zoo:rdn-hevc-ai-depth", help="checkpoint or zoo:NAME")
    ap.add_argument("--data", default=None,
                    help=f"validation shards (default: {HELDOUT} if present)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--per-group", type=int, default=0,
                    help="at most N patches per (sequence, QP), evenly spaced (0: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    data = Path(args.data) if args.data else HELDOUT
    if not data.exists():
        ap.error(f"{data}: no such shards; give --data")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, meta = load_model(args.model)
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ds = ShardDataset(data, planes=model.config.planes)
    part = monitor_subset(ds, args.per_group) if args.per_group else ds
    fp32, t32 = gains(model, part, device, False, args.batch_size)
    print(f"fp32: {t32:.1f} s", file=sys.stderr)
    bf16, t16 = gains(model, part, device, True, args.batch_size)
    print(f"bf16: {t16:.1f} s", file=sys.stderr)

    dev = (torch.cuda.get_device_name(device) if device.type == "cuda"
           else f"CPU ({torch.get_num_threads()} threads)")
    print(f"\nModel {args.model} (step {meta.get('step')}), {len(part)} patches of {data}, "
          f"{dev}, torch {torch.__version__}; fp32 {t32:.1f} s, bf16 autocast {t16:.1f} s\n")
    print("| QP | frames | PSNR-Y rec (dB) | gain fp32 (dB) | gain bf16 (dB) | bf16 − fp32 (dB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for a, b in zip(fp32, bf16, strict=True):
        qp = "mean" if a["qp"] == "all" else a["qp"]
        print(f"| {qp} | {a['pictures']} | {a['psnr_rec']:.4f} | {a['gain']:+.4f} | "
              f"{b['gain']:+.4f} | {b['gain'] - a['gain']:+.4f} |")


if __name__ == "__main__":
    main()
