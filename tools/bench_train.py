"""Training throughput of the RDN presets: eager fp32 vs faster set-ups, side by side.

    PYTHONPATH=. python tools/bench_train.py                       # CPU, ~2 min here
    PYTHONPATH=. python tools/bench_train.py --device cuda --data SHARDS   # GPU machine

For each model and configuration, times full optimizer steps (forward, masked MSE, backward,
AdamW) on 132×132 patches already on the device, and reports patches/s, the ratio to eager
fp32 measured in the same run, and achieved TFLOP/s = 2 · MAC/patch · 3 (forward + backward)
· patches/s, with MAC/patch counted by codecnn.models.complexity. Beside it, the DataLoader's
patches/s from real shards (so the loader is never the hidden bottleneck). Prints a Markdown
table.

The row "codecnn train loop" times the real thing at the same batch: train_model itself (loader
with its default workers, packed batches normalised on the device, loss weights, the
non-finite check, logging) on the real shards, with bf16 autocast and channels_last as the
cl-bf16 row; its rate is the mean of train.csv's patches/s after the first log interval
(start-up, and the final validation, excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from codecnn.models import build_model  # noqa: E402
from codecnn.models.complexity import count_macs  # noqa: E402
from codecnn.train.loop import compute_loss  # noqa: E402

CONFIGS = {
    "eager-fp32": {"channels_last": False, "bf16": False, "compile": False},
    "cl-fp32": {"channels_last": True, "bf16": False, "compile": False},
    "cl-bf16": {"channels_last": True, "bf16": True, "compile": False},
    "compile-cl-bf16": {"channels_last": True, "bf16": True, "compile": True},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # this GPU, not the current one


def train_rate(preset: str, cfg: dict, device: torch.device, batch: int, warmup: int,
               steps: int) -> float:
    """Optimizer steps per second × batch for one preset and configuration."""
    torch.manual_seed(0)
    model = build_model(preset, planes=("rec", "qp")).to(device)
    x = torch.rand(batch, 2, 132, 132, device=device)
    target = torch.randn(batch, 1, 128, 128, device=device) * 0.01
    valid = torch.ones(batch, 1, 128, 128, device=device)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step_model = torch.compile(model) if cfg["compile"] else model

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg["bf16"]):
            pred = step_model(x)
        loss = compute_loss(pred, target, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def loop_rate(preset: str, data: Path, device: torch.device, batch: int, steps: int,
              compile: bool = False) -> float:
    """Patches/s of codecnn's training loop (train_model) on real shards, steady state."""
    from codecnn.train import TrainConfig, train_model
    from codecnn.train.logs import read_csv

    every = max(1, steps // 5)
    config = TrainConfig(data=(str(data),), preset=preset, planes=("rec", "qp"), steps=steps,
                         batch_size=batch, log_every=every, val_every=steps, amp="bf16",
                         channels_last=True, compile=compile, device=str(device),
                         qp_weighting="none")
    with tempfile.TemporaryDirectory() as run:
        train_model(config, Path(run) / "run", progress=False)
        rows = read_csv(Path(run) / "run" / "train.csv")
    rates = [float(r["patches_per_s"]) for r in rows[1:]] or [float(rows[0]["patches_per_s"])]
    return sum(rates) / len(rates)


def loader_rate(data: Path, batch: int, workers: int, seconds: float) -> tuple[float, int]:
    """Patches/s a shuffled DataLoader delivers from real shards (cycling epochs)."""
    from codecnn.datasets import ShardDataset

    ds = ShardDataset(data)
    loader = torch.utils.data.DataLoader(ds, batch_size=min(batch, len(ds)), shuffle=True,
                                         num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    n, t0 = 0, None
    while True:
        for b in loader:
            if t0 is None:  # the first batch pays for starting the workers
                t0 = time.perf_counter()
                continue
            n += b["input"].shape[0]
            if time.perf_counter() - t0 >= seconds:
                return n / (time.perf_counter() - t0), len(ds)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="rdn-s,rdn-m")
    ap.add_argument("--configs", default=None,
                    help=f"comma list of {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: CPU 2, CUDA 64")
    ap.add_argument("--warmup", type=int, default=None, help="default: CPU 1, CUDA 10")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (CPU 3, CUDA 30)")
    ap.add_argument("--data", default=None, help="shards for the loader rate (default: make "
                                                 "small VVC-coded shards in a temp dir)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop-steps", type=int, default=None,
                    help="steps of the real training loop (CPU 6, CUDA 300; 0: no loop row)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    configs = (args.configs or ",".join(CONFIGS)).split(",")
    batch = args.batch_size or (64 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    steps = args.steps or (30 if cuda else 3)

    loop_steps = args.loop_steps if args.loop_steps is not None else (300 if cuda else 6)
    loops: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else None
        if data is None:
            from tests.train_data import make_shards

            data = Path(tmp) / "shards"
            make_shards(data, sequences=("astronaut", "coffee", "chelsea"), qps=(32, 37))
        lrate, npatches = loader_rate(data, batch, args.workers, 5.0 if not cuda else 10.0)
        for preset in args.models.split(",") if loop_steps else []:
            loops[preset] = loop_rate(preset, data, device, batch, loop_steps)
            print(f"{preset} codecnn train loop: {loops[preset]:.2f} patches/s", file=sys.stderr)

    rows = []
    for preset in args.models.split(","):
        macs = sum(r["macs"] for r in count_macs(build_model(preset).eval(),
                                                 torch.rand(1, 2, 132, 132)))
        base = None
        results = []
        for name in configs:
            rate = train_rate(preset, CONFIGS[name], device, batch, warmup, steps)
            base = rate if name == "eager-fp32" else base
            results.append((name, rate))
            print(f"{preset} {name}: {rate:.2f} patches/s", file=sys.stderr)
        best = max(results, key=lambda r: r[1])
        if preset in loops:
            results.append(("codecnn train loop (cl-bf16)", loops[preset]))
        for name, rate in results:
            rows.append((preset, macs, name, rate, rate / base if base else float("nan"),
                         6 * macs * rate / 1e12, name == best[0]))

    dev = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\nDevice: {dev}, torch {torch.__version__}, batch {batch}, {steps} timed steps "
          f"after {warmup} warm-up, 132×132 patches, planes rec+qp\n")
    print("| model | kMAC/px | configuration | train patches/s | × eager fp32 | TFLOP/s | "
          "loader patches/s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for preset, macs, name, rate, ratio, tflops, is_best in rows:
        mark = " (fastest)" if is_best else ""
        print(f"| {preset} | {macs / 128**2 / 1e3:.0f} | {name}{mark} | {rate:.2f} | "
              f"{ratio:.2f} | {tflops:.3f} | {lrate:.0f} |")
    print(f"\nLoader: {args.workers} workers, batch {batch}, shuffled, from {npatches} real "
          f"VVC-coded patches ({'given shards' if args.data else 'made on the fly'}).")
    for preset, rate in loops.items():
        ideal = dict(results_of(rows, preset)).get("cl-bf16")
        if ideal:
            print(f"{preset}: the training loop runs at {rate / ideal:.2f}× the idealised "
                  f"cl-bf16 step ({loop_steps} steps of codecnn train, batch {batch}).")


def results_of(rows: list[tuple], preset: str) -> list[tuple[str, float]]:
    return [(r[2], r[3]) for r in rows if r[0] == preset]


if __name__ == "__main__":
    main()
