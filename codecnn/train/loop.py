"""Training of the RDN in-loop filter: plain functions, one run directory, exact resume.

    train_rdn(config, run_dir)                       # a new run
    train_rdn(config, run_dir, resume=True)          # continue RUN/last.pt up to config.steps

RUN holds config.json and command.txt (the resolved config and the command line),
train.csv / val.csv / tb/ (logs), curves.png, last.pt and best.pt (see checkpoint.py).

Exactness: the order of patches is a pure function of (seed, global position), so a resumed
run draws exactly the batches the uninterrupted run would have drawn; the model, optimizer,
scheduler and RNG states come back from last.pt.
Under torchrun every process trains on its own slice of each global batch (DDP averages the
gradients) and validates its share of the validation set (the sums are all-reduced); only
rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codecnn import __version__
from codecnn.errors import CodecnnError, DataError
from codecnn.io import shard
from codecnn.io.atomic import remove_stale_temporaries, write_json_atomic
from codecnn.io.metrics import mse_to_psnr
from codecnn.models import build_model, config_to_dict, read_checkpoint, resolve_preset
from codecnn.train.checkpoint import save_checkpoint, set_rng_state
from codecnn.train.command import command_line
from codecnn.train.config import TrainConfig, default_batch
from codecnn.train.logs import RunLog, plot_curves
from codecnn.train.schedule import make_scheduler


class NonFiniteLoss(CodecnnError):
    """The training loss became NaN/inf; training stopped without writing those weights."""


# ----------------------------------------------------------------------------- data


def data_identity(paths: list[Path]) -> list[dict[str, Any]]:
    """What identifies the training data of a run: per shard its file name, size, sequence,
    nominal QP, bit depth and patch count (checked again on resume)."""
    out = []
    for p in paths:
        with shard.open_shard(p) as f:
            attrs = shard.read_attrs(f)
            n = int(f[shard.META].shape[0])
        out.append({"file": p.name, "path": str(p.resolve()), "bytes": p.stat().st_size,
                    "sequence": attrs.get("sequence"), "nominal_qp": attrs.get("nominal_qp"),
                    "bit_depth": attrs.get("bit_depth"), "patches": n})
    return out


def _same_data(a: dict, b: dict) -> bool:
    """The same shards (name, size, patch count), wherever the record lists them: runs
    recorded before the split was written out listed every shard under train."""
    def key(d: dict) -> list:
        return sorted((x["file"], x["bytes"], x["patches"])
                      for part in ("train", "val") for x in d.get(part, {}).get("shards", []))

    return key(a) == key(b)


def make_datasets(config: TrainConfig):
    """(train_ds, val_ds, data identity dict, note) from config.data / config.val.

    Without `val`, the data is split by sequence (never by patch); if the shards hold a
    single sequence, validation runs on the training data and the note says so.
    """
    from codecnn.datasets import ShardDataset, list_sequences, split_by_sequence

    paths = shard.shard_paths(list(config.data))
    kw = {"planes": config.planes, "in_memory": config.in_memory}
    note = ""
    if config.val:
        val_paths = shard.shard_paths(list(config.val))
        train_ds = ShardDataset(paths, full_ctus_only=config.full_ctus_only, **kw)
        val_ds = ShardDataset(val_paths, **kw)
        if (val_ds.bit_depth, val_ds.planes, val_ds.border) != (
                train_ds.bit_depth, train_ds.planes, train_ds.border):
            raise DataError(f"{val_paths[0]}: validation shards differ from the training shards "
                            f"(bit depth, planes or border)")
    else:
        val_paths = []
        sequences = list_sequences(paths)
        if len(sequences) >= 2 or config.val_sequences:
            split = {"seed": config.seed, "val_sequences": config.val_sequences}
            train_ds, _ = split_by_sequence(paths, full_ctus_only=config.full_ctus_only,
                                            **split, **kw)
            _, val_ds = split_by_sequence(paths, **split, **kw)
            note = f"validation sequences (split by sequence): {', '.join(val_ds.sequences)}"
        else:
            train_ds = ShardDataset(paths, full_ctus_only=config.full_ctus_only, **kw)
            val_ds = ShardDataset(paths, **kw)
            note = (f"the data holds a single sequence ({sequences[0]}): validating on the "
                    f"TRAINING data, so the gain is not a held-out result")
    shards = data_identity(paths)
    if not val_paths and set(val_ds.sequences) != set(train_ds.sequences):  # split by sequence
        train_shards = [d for d in shards if d["sequence"] not in set(val_ds.sequences)]
        val_shards = [d for d in shards if d["sequence"] in set(val_ds.sequences)]
    else:
        train_shards, val_shards = shards, data_identity(val_paths) if val_paths else []
    identity = {
        "train": {"shards": train_shards, "sequences": train_ds.sequences,
                  "patches": len(train_ds)},
        "val": {"shards": val_shards, "sequences": val_ds.sequences, "patches": len(val_ds)},
        "planes": list(train_ds.planes), "bit_depth": train_ds.bit_depth,
        "border": train_ds.border, "ctu_size": train_ds.ctu_size,
    }
    return train_ds, val_ds, identity, note


def stream_indices(n: int, batch: int, seed: int, rank: int = 0, world: int = 1,
                   start_step: int = 0) -> Iterator[int]:
    """Endless patch indices for one process, starting at optimizer step `start_step`.

    The global stream is a fresh permutation of 0..n-1 per epoch (seeded by seed and epoch);
    step s takes positions [s·B·W, (s+1)·B·W) of it and rank r the r-th B of those.
    """
    perms: dict[int, list[int]] = {}
    step = start_step
    while True:
        base = step * batch * world + rank * batch
        for q in range(base, base + batch):
            epoch, i = divmod(q, n)
            if epoch not in perms:
                perms.clear()
                gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                perms[epoch] = torch.randperm(n, generator=gen).tolist()
            yield perms[epoch][i]
        step += 1


class _StreamSampler(torch.utils.data.Sampler):
    def __init__(self, **kw: int) -> None:
        self.kw = kw

    def __iter__(self) -> Iterator[int]:
        return stream_indices(**self.kw)


# ----------------------------------------------------------------------------- steps


def compute_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                 kind: str = "mse", weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean MSE or L1 over the CTU's valid samples. All [B, 1, C, C], normalised by peak;
    `weight` [B] scales each patch's share (the per-QP weighting)."""
    err = (pred.float() - target) * valid
    per = err.square() if kind == "mse" else err.abs()
    if weight is not None:
        per = per * weight.view(-1, 1, 1, 1)
    return per.sum() / valid.sum().clamp_min(1.0)


def qp_loss_weights(ds, kind: str = "mse", per_group: int = 64,
                    power: float = 1.0) -> dict[int, float]:
    """Per nominal QP, 1 / (mean coding-error energy at that QP)^power, scaled to average 1.

    The error energy at QP 22 is several times smaller than at QP 37, so a plain mean loss
    listens mostly to the high QPs; dividing by each QP's energy gives every QP the same say.
    Energy: mean squared (MSE) or absolute (L1) residual over up to `per_group` patches per
    (sequence, QP), taken at fixed positions (deterministic, so a resume measures the same).
    """
    energy: dict[int, list[float]] = defaultdict(list)
    for qp, idx in _spread_per_group(ds, per_group):
        for i in idx:
            item = ds[int(i)]
            t, v = item["target"], item["valid"]
            e = t.square() if kind == "mse" else t.abs()
            energy[qp].append(float((e * v).sum() / v.sum().clamp_min(1.0)))
    inv = {qp: max(float(np.mean(v)), 1e-12) ** -power for qp, v in energy.items()}
    mean_inv = float(np.mean(list(inv.values())))
    return {qp: round(w / mean_inv, 6) for qp, w in sorted(inv.items())}


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def psnr(sse: float, n: int, peak: float) -> float:
    """PSNR-Y of one frame from its SSE over n samples, as codecnn.io.metrics defines it
    (999.99 dB for a lossless frame, as HM/VTM print it). A non-finite SSE — finite weights
    whose outputs overflow — stops the run instead of scoring as a huge gain."""
    if not math.isfinite(sse):
        raise NonFiniteLoss(f"validation: the filtered samples are not finite (SSE {sse})")
    return mse_to_psnr(sse / max(n, 1), round(math.log2(peak + 1)))


def validation_loader(ds, batch_size: int, workers: int = 0, rank: int = 0, world: int = 1,
                      pin: bool = False, persistent: bool = True) -> torch.utils.data.DataLoader:
    """This process's part of a validation set (a ShardDataset, or a torch Subset of one):
    every world-th patch from the rank-th on, packed (codecnn.datasets.PackedPatches);
    `evaluate` all-reduces the parts. With `persistent`, workers stay alive between
    validations."""
    from codecnn.datasets.shards import PackedPatches

    base, idx = ds, range(len(ds))
    if isinstance(ds, torch.utils.data.Subset):
        base, idx = ds.dataset, ds.indices
    part = PackedPatches(base, [int(i) for i in idx][rank::world])
    return torch.utils.data.DataLoader(part, batch_size=batch_size, num_workers=workers,
                                       pin_memory=pin, shuffle=False,
                                       persistent_workers=persistent and workers > 0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, amp: bool = False,
             channels_last: bool = False) -> list[dict[str, Any]]:
    """PSNR-Y of reconstruction and filtered reconstruction per nominal QP, and the gain.

    `loader`: from validation_loader. Samples are compared as the decoder would output them:
    integers in [0, peak] (rec + residual rounded and clipped). PSNR is per frame (sequence,
    QP, POC) over the valid samples of its CTUs, averaged over the frames of a sequence,
    then over sequences. The per-frame sums (SSE of rec, SSE of filtered, samples) are
    exact integers in float64 on the device; under torch.distributed they are all-reduced,
    so every rank gets the same rows, equal to one process's.
    Returns one row per QP plus a row "all" (mean over QPs).
    """
    from codecnn.datasets.shards import model_inputs

    ds = loader.dataset.ds
    keys, frame_of = ds.frames()
    peak, border = ds.peak, ds.border
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(keys), 3, dtype=torch.float64, device=device)
    for batch in loader:
        on = {k: batch[k].to(device, non_blocking=True) for k in ("rec", "side", "orig", "valid")}
        x, _, valid = model_inputs(on, ds.planes, peak, border, device, channels_last)
        with _autocast(device, amp):
            pred = model(x)
        s = on["orig"].shape[-1]
        rec = on["rec"][..., border:border + s, border:border + s].double()
        orig = on["orig"].double()
        filt = torch.clamp(torch.round(rec + pred.double() * peak), 0, peak)
        valid = valid.double()
        per = torch.stack([((orig - rec).square() * valid).sum(dim=(1, 2, 3)),
                           ((orig - filt).square() * valid).sum(dim=(1, 2, 3)),
                           valid.sum(dim=(1, 2, 3))], 1)
        ids = torch.from_numpy(frame_of[batch["index"].numpy()]).to(device)
        sums.index_add_(0, ids, per)
    model.train(was_training)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
    # frame → sequence → QP
    per_seq: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for (seq, qp, _poc), (er, ef, n) in zip(keys, sums.cpu().tolist(), strict=True):
        if n > 0:  # a picture with patches in this set (a Subset holds fewer)
            per_seq[(seq, qp)].append((psnr(er, int(n), peak), psnr(ef, int(n), peak)))
    per_qp: dict[int, list[tuple[float, float]]] = defaultdict(list)
    frames: dict[int, int] = defaultdict(int)
    for (_seq, qp), vals in per_seq.items():
        per_qp[qp].append((float(np.mean([v[0] for v in vals])),
                           float(np.mean([v[1] for v in vals]))))
        frames[qp] += len(vals)
    rows = []
    for qp in sorted(per_qp):
        pr = float(np.mean([v[0] for v in per_qp[qp]]))
        pf = float(np.mean([v[1] for v in per_qp[qp]]))
        rows.append({"nominal_qp": qp, "psnr_rec": round(pr, 4), "psnr_filtered": round(pf, 4),
                     "gain_db": round(pf - pr, 4), "frames": frames[qp]})
    if rows:
        rows.append({"nominal_qp": "all",
                     "psnr_rec": round(float(np.mean([r["psnr_rec"] for r in rows])), 4),
                     "psnr_filtered": round(float(np.mean([r["psnr_filtered"] for r in rows])), 4),
                     "gain_db": round(float(np.mean([r["gain_db"] for r in rows])), 4),
                     "frames": sum(frames.values())})
    return rows


# ----------------------------------------------------------------------------- run


def _setup(config: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = config.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise CodecnnError(f"device {config.device!r} asked for, but CUDA is not available")
    if want.startswith("cuda"):
        device = cuda_device(want, world, local)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: pick the fastest conv
    else:
        device = torch.device(want)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            # Rank 0 writes checkpoints and plots while the others wait at a barrier: allow
            # more than the 10-minute default before a collective times out.
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(hours=2))
    return rank, world, device


def cuda_device(want: str, world: int, local_rank: int) -> torch.device:
    """The GPU of this process: `cuda:N` alone, LOCAL_RANK's GPU under torchrun.

    Under torchrun every rank must get its own GPU, so an explicit index other than the
    rank's own is refused rather than putting every rank on the same GPU.
    """
    asked = torch.device(want)
    if world <= 1:
        return torch.device("cuda", asked.index or 0)
    if asked.index is not None and asked.index != local_rank:
        raise CodecnnError(f"--device {want} under torchrun: each rank takes cuda:LOCAL_RANK "
                           f"(this rank: cuda:{local_rank}); give --device cuda")
    return torch.device("cuda", local_rank)


def check_world_size(run_dir: Path, world: int) -> None:
    """Refuse to resume a run with another number of processes than it started with: the
    global batch (batch × processes) and each rank's share of the draws depend on it."""
    try:
        record = json.loads((run_dir / "config.json").read_text())
        started = int(record["resolved"]["world_size"])
        batch = int(record["train_config"]["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # runs recorded before the world size was written: nothing to compare
    if started != world:
        raise CodecnnError(
            f"{run_dir}: was trained with {started} process(es) (global batch "
            f"{batch * started}); resuming with {world} would change the global batch and "
            f"the data each rank draws: resume with {started} process(es)")


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, default=str)


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a run was started with (RUN/config.json)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a training run (no config.json)")
    try:
        record = json.loads(path.read_text())
        return TrainConfig.from_dict(_from_cwd(record["train_config"], record.get("cwd")))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable run config ({e})") from None


def _from_cwd(train_config: dict[str, Any], cwd: str | None) -> dict[str, Any]:
    """Paths given relative to the directory a run was started in, made absolute, so the
    run resumes from any working directory."""
    if not cwd:  # runs recorded before the start directory was
        return train_config
    out = dict(train_config)

    def absolute(p: str) -> str:
        return p if p.startswith("zoo:") or os.path.isabs(p) else os.path.join(cwd, p)

    for key in ("data", "val", "monitor"):
        if out.get(key):
            out[key] = [absolute(p) for p in out[key]]
    if out.get("init_from"):
        out["init_from"] = absolute(out["init_from"])
    return out


def train_rdn(config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
              overwrite: bool = False, until: int | None = None,
              command: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or, with resume, continue) an RDN; returns a summary dict.

    Summary: run, step, steps, best_metric (mean validation gain in dB, higher is better),
    val (rows of the last validation: nominal_qp, psnr_rec, psnr_filtered, gain_db, frames),
    val_note, seconds, patches_per_s. Raises NonFiniteLoss when the loss stops being finite.
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    rank, world, device = _setup(config)
    if config.batch_size is None:  # recorded resolved, so a resume keeps it on any device
        config = dataclasses.replace(config, batch_size=default_batch(device))
    model_name, _ = resolve_preset(config.preset)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume:
        if not last_path.is_file():
            raise DataError(f"{run_dir}: nothing to resume (no last.pt)")
        check_world_size(run_dir, world)
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise CodecnnError(f"{run_dir}: exists and is not empty; use --resume {run_dir} to "
                           f"continue it or --overwrite to start again")
    if until is not None and not 0 < until <= config.steps:
        raise CodecnnError(f"--until {until} must be in 1..--steps ({config.steps})")
    stop_at = until or config.steps
    if world > 1:  # every rank has checked RUN before rank 0 starts writing into it
        torch.distributed.barrier()

    train_ds, val_ds, identity, note = make_datasets(config)
    loss_weights = None
    if config.qp_weighting != "none":
        loss_weights = qp_loss_weights(train_ds, config.loss,
                                       power=0.5 if config.qp_weighting == "sqrt" else 1.0)
    monitor_ds = None
    if config.monitor:
        from codecnn.datasets import ShardDataset

        monitor_ds = monitor_subset(ShardDataset(shard.shard_paths(list(config.monitor)),
                                                 planes=train_ds.planes))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    net = build_model(config.preset, planes=train_ds.planes, budget_kmac=config.budget_kmac,
                      **config.model_overrides)
    model_config = config_to_dict(net.config)
    amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = make_scheduler(optimizer, config.warmup_steps, config.steps)
    step, best_metric, started_from = 0, None, None
    if config.init_from and not resume:
        started_from = _init_from(net, config.init_from)
    if resume:
        ckpt = read_checkpoint(last_path)
        started_from = ckpt.get("init_from")
        if ckpt["model_name"] != model_name or dict(ckpt["model_config"]) != model_config:
            raise CodecnnError(
                f"{run_dir}: was trained with model {ckpt['model_name']} "
                f"{_short(ckpt['model_config'])}, not {config.preset} {_short(model_config)}")
        if not _same_data(ckpt.get("data") or {}, identity):
            raise DataError(f"{run_dir}: the data differs from the data the run was trained "
                            f"on (files, sizes or patch counts); an exact resume needs the same")
        net.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        step, best_metric = int(ckpt["step"]), ckpt.get("best_metric")
        set_rng_state(ckpt["rng"])
        if step >= stop_at:
            raise CodecnnError(f"{run_dir}: already at step {step}; give a larger --steps "
                               f"to continue it")
    train_model: torch.nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)

    pin = device.type == "cuda"
    workers = config.loader_workers(pin)
    writer = rank == 0
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)  # checkpoints an interrupted run was writing
        if not resume:
            _clear_run(run_dir)
        record = {"train_config": config.to_dict(), "model_name": model_name,
                  "model_config": model_config, "preset": config.preset,
                  "resolved": {"amp_bf16": amp, "channels_last": channels_last,
                               "warmup_steps": config.warmup_steps, "device": str(device),
                               "workers": workers, "batch_size": config.batch_size,
                               "world_size": world,
                               "global_batch": config.batch_size * world,
                               "qp_loss_weights": loss_weights},
                  "init_from": started_from,
                  "data": identity, "val_note": note, "command": command or sys.argv,
                  "cwd": os.getcwd(),
                  "torch_version": torch.__version__, "codecnn_version": __version__}
        if not resume:
            _write_json(run_dir / "config.json", record)
        else:
            _write_json(run_dir / f"config.resume-{step}.json", record)
        with open(run_dir / "command.txt", "a") as f:
            f.write(command_line(command or sys.argv) + "\n")
    log = (RunLog(run_dir, resume_step=step if resume else None, monitor=monitor_ds is not None)
           if writer else None)
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if writer else (lambda msg: None)
    if note:
        say(f"train: {note}")
    if config.budget_kmac is not None:
        say(f"train: {config.budget_kmac} kMAC/px budget: {model_name} {_short(model_config)}")
    if started_from and not resume:
        from codecnn.train.init_from import describe

        for line in describe(started_from, started_from["path"]):
            say(f"train: {line}")

    from codecnn.datasets.shards import PackedPatches, model_inputs

    # Packed integers travel (a quarter of the float32 bytes); model_inputs makes the floats
    # on the device.
    loader = torch.utils.data.DataLoader(
        PackedPatches(train_ds), batch_size=config.batch_size, num_workers=workers,
        pin_memory=pin, sampler=_make_sampler(config, train_ds, rank, world, step),
        persistent_workers=workers > 0, drop_last=True)
    # Every rank validates its share; on a GPU the workers stay alive between validations
    # (on the CPU one worker comes and goes: an --in-memory copy is not held twice).
    val_loader = validation_loader(val_ds, config.batch_size, workers if pin else min(workers, 1),
                                   rank, world, pin=pin, persistent=pin)
    monitor_loader = None if monitor_ds is None else validation_loader(
        monitor_ds, config.batch_size, 0, rank, world, pin=pin)
    border, peak = train_ds.border, train_ds.peak

    def checkpoint(path: Path, at: int) -> None:
        save_checkpoint(path, model_name=model_name, model_config=model_config, model=net,
                        optimizer=optimizer, scheduler=scheduler, step=at, data=identity,
                        best_metric=best_metric, train_config=config.to_dict(),
                        init_from=started_from)

    last_saved = step if resume else None
    val_rows: list[dict[str, Any]] = []

    def validate_and_save(at: int) -> None:
        nonlocal best_metric, val_rows, last_saved
        # Every rank scores its part; the all-reduced rows are the same on every rank.
        val_rows = evaluate(net, val_loader, device, amp, channels_last)
        monitor_rows = (None if monitor_loader is None else
                        evaluate(net, monitor_loader, device, amp, channels_last))
        if writer:
            log.val(at, val_rows)
            gain = val_rows[-1]["gain_db"]
            per = "  ".join(f"QP{r['nominal_qp']} {r['gain_db']:+.3f}" for r in val_rows[:-1])
            say(f"step {at}: validation PSNR-Y gain {gain:+.4f} dB ({per})")
            if monitor_rows is not None:
                log.monitor(at, time.perf_counter() - t_start, monitor_rows)
                say(f"step {at}: monitor (never used to choose) PSNR-Y gain "
                    f"{monitor_rows[-1]['gain_db']:+.4f} dB")
            if best_metric is None or gain > best_metric:
                best_metric = gain
                checkpoint(best_path, at)
            checkpoint(last_path, at)
            last_saved = at
            plot_curves(run_dir)
        if world > 1:
            torch.distributed.barrier()

    t_start = time.perf_counter()
    t_log, n_log, loss_sum = time.perf_counter(), 0, torch.zeros((), device=device)
    start_step = step
    bar = tqdm(total=stop_at, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=None if (writer and progress) else True, file=sys.stderr)
    flag = torch.zeros(1, device=device)
    qp_weight = None
    if loss_weights is not None:
        qp_weight = torch.zeros(max(loss_weights) + 1).index_put_(
            (torch.tensor(list(loss_weights)),), torch.tensor(list(loss_weights.values())))
        qp_weight = qp_weight.to(device)
    check_every = 1 if device.type == "cpu" else config.log_every
    train_model.train()
    try:
        it = iter(loader)
        while step < stop_at:
            batch = next(it)
            x, target, valid = model_inputs(batch, train_ds.planes, peak, border, device,
                                            channels_last)
            with _autocast(device, amp):
                pred = train_model(x)
            weight = None
            if loss_weights is not None:  # a look-up on the device: no copy that waits
                weight = qp_weight[batch["nominal_qp"].to(device, non_blocking=True)]
            loss = compute_loss(pred, target, valid, config.loss, weight)
            flag += (~torch.isfinite(loss.detach())).float()
            # On the CPU the check is free: stop before a non-finite loss touches the
            # weights. On a GPU, reading the flag waits for the step to finish, so it is read
            # every log_every steps and before every checkpoint; checkpoints refuse
            # non-finite weights, so last.pt always holds the last good step.
            if (step + 1) % check_every == 0 or (step + 1) % config.val_every == 0 \
                    or step + 1 == stop_at:
                if world > 1:
                    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                bad = flag.item() > 0
            else:
                bad = False
            if bad:
                kept = (f"{last_path} keeps step {last_saved}, the last good checkpoint"
                        if last_saved is not None else "no checkpoint had been written yet")
                when = ("stopped before updating the weights" if check_every == 1 else
                        f"found at the check of step {step + 1} (checked every "
                        f"{check_every} steps on {device.type})")
                raise NonFiniteLoss(f"{run_dir}: training loss is {loss.item()} at step "
                                    f"{step + 1}; {when}; {kept}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.detach()
            n_log += 1
            bar.update(1)
            if step % config.log_every == 0 or step == stop_at:
                mean_loss = loss_sum / n_log
                if world > 1:
                    torch.distributed.all_reduce(mean_loss)
                    mean_loss /= world
                dt = time.perf_counter() - t_log
                row = {"step": step, "lr": scheduler.get_last_lr()[0],
                       "loss": float(mean_loss), "elapsed_s": round(time.perf_counter()
                                                                     - t_start, 3),
                       "patches_per_s": round(n_log * config.batch_size * world / dt, 2)}
                if writer:
                    log.train(row)
                    bar.set_postfix(loss=f"{row['loss']:.3g}")
                t_log, n_log, loss_sum = time.perf_counter(), 0, torch.zeros((), device=device)
            if step % config.val_every == 0 or step == stop_at:
                validate_and_save(step)
    finally:
        bar.close()
        if log:
            log.close()
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    seconds = time.perf_counter() - t_start
    summary = {"run": str(run_dir), "step": step, "steps": config.steps,
               "best_metric": best_metric, "val": val_rows, "val_note": note,
               "seconds": round(seconds, 2),
               "patches_per_s": round((step - start_step) * config.batch_size * world
                                      / max(seconds, 1e-9), 2)}
    return summary


def _init_from(net: torch.nn.Module, path: str) -> dict[str, Any]:
    """Load what fits of checkpoint `path` (or zoo:NAME) into `net`; the record of it."""
    from codecnn.train.init_from import file_sha256, load_matching
    from codecnn.zoo import resolve_model_path

    parent = read_checkpoint(path)
    report = load_matching(net, parent)
    if not report["loaded"]:
        raise CodecnnError(f"{path}: no tensor of it fits this model "
                           f"({parent['model_name']} {_short(parent['model_config'])})")
    return {"path": str(path), "sha256": file_sha256(resolve_model_path(path)),
            "step": parent.get("step"), "model_name": parent["model_name"],
            "model_config": parent["model_config"], **report}


def monitor_subset(ds, per_group: int = 64) -> torch.utils.data.Subset:
    """At most `per_group` patches per (sequence, QP), evenly spaced in storage order: a fixed
    sample of a large held-out set that scores in seconds."""
    keep = {int(i) for _, idx in _spread_per_group(ds, per_group) for i in idx}
    return torch.utils.data.Subset(ds, sorted(keep))


def _spread_per_group(ds, per_group: int) -> Iterator[tuple[int, np.ndarray]]:
    """(nominal QP, up to `per_group` patch indices evenly spaced in storage order) for each
    (sequence, QP) of a ShardDataset: a fixed, deterministic sample."""
    names = np.array([shard.decode_name(s) for s in ds.meta["sequence"]])
    qps = ds.meta["nominal_qp"].astype(int)
    for name in np.unique(names):
        for qp in np.unique(qps[names == name]):
            idx = np.nonzero((names == name) & (qps == qp))[0]
            yield int(qp), idx[np.linspace(0, len(idx) - 1, min(per_group, len(idx))).astype(int)]


def _make_sampler(config: TrainConfig, train_ds, rank: int, world: int,
                  step: int) -> torch.utils.data.Sampler:
    """The training draws of this process from `step` on (balanced or a plain stream)."""
    if config.sampling == "stream":
        return _StreamSampler(n=len(train_ds), batch=config.batch_size, seed=config.seed,
                              rank=rank, world=world, start_step=step)
    from codecnn.train.sampling import BalancedDraws, BalancedSampler

    meta = train_ds.meta
    names = np.array([shard.decode_name(s) for s in meta["sequence"]])
    try:
        table = BalancedDraws(names, meta["nominal_qp"].astype(int),
                              np.stack([meta["valid_h"], meta["valid_w"]], axis=1),
                              weights=config.source_weights, crop=config.crop,
                              ctu_size=train_ds.ctu_size, dihedral=config.dihedral)
    except ValueError as e:
        raise CodecnnError(str(e)) from None
    return BalancedSampler(table, config.batch_size, config.seed, rank, world, start_step=step)


def _clear_run(run_dir: Path) -> None:
    """Remove what an earlier run left in RUN (only files this module writes)."""
    import shutil

    for name in ("last.pt", "best.pt", "train.csv", "val.csv", "monitor.csv", "curves.png",
                 "config.json", "command.txt"):
        (run_dir / name).unlink(missing_ok=True)
    for p in run_dir.glob("config.resume-*.json"):
        p.unlink()
    if (run_dir / "tb").is_dir():
        shutil.rmtree(run_dir / "tb")


def _short(cfg: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "border") + ")"
