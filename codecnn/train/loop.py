"""Training of the in-loop filters (every family): plain functions, one run directory,
exact resume.

    train_model(config, run_dir)                     # a new run
    train_model(config, run_dir, resume=True)        # continue RUN/last.pt up to config.steps

train_model reads top to bottom: setup_run (processes, RUN checks, data, model, optimizer),
restore_run (last.pt on resume, or init_from's weights), fit (the optimizer steps), which
calls validate (scoring, best.pt/last.pt). They share one TrainingRun record.

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
from codecnn.io.metrics import PsnrAccumulator
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


def validation_loader(ds, batch_size: int, workers: int = 0, rank: int = 0, world: int = 1,
                      pin: bool = False, persistent: bool = True) -> torch.utils.data.DataLoader:
    """This process's part of a validation set (a ShardDataset, or a torch Subset of one):
    every world-th patch from the rank-th on, packed (codecnn.datasets.PackedPatches);
    `evaluate` all-reduces the parts. With `persistent`, workers stay alive between
    validations."""
    from codecnn.datasets.shard_dataset import PackedPatches

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
    Returns one row per QP plus a row "all" (mean over QPs), as PsnrAccumulator.qp_rows
    names them (qp, sequences, pictures, psnr_rec, psnr_filt, gain), rounded to 4 decimals.
    """
    from codecnn.datasets.shard_dataset import model_inputs

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
    acc = PsnrAccumulator(ds.bit_depth)
    for (seq, qp, poc), (er, ef, n) in zip(keys, sums.cpu().tolist(), strict=True):
        acc.add(seq, qp, poc, int(n), rec=er, filt=ef)  # n == 0: not in this set (a Subset)
    try:
        rows = acc.qp_rows(with_mean=True)
    except ValueError as e:  # finite weights whose outputs overflow: stop, never a huge gain
        raise NonFiniteLoss(f"validation: {e}") from None
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


# ----------------------------------------------------------------------------- run


def _distributed_device(config: TrainConfig) -> tuple[int, int, torch.device]:
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


@dataclasses.dataclass
class TrainingRun:
    """One run being trained: what `setup_run` builds, `restore_run` loads and `fit` advances.

    A plain record rather than closures over locals: each piece of `train_model` reads it and
    updates step, best_metric, last_saved and val_rows in the open.
    """

    config: TrainConfig
    run_dir: Path
    rank: int
    world: int
    device: torch.device
    stop_at: int
    train_ds: Any
    val_ds: Any
    monitor_ds: Any
    identity: dict[str, Any]
    note: str
    loss_weights: dict[int, float] | None
    model_name: str
    model_config: dict[str, Any]
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp: bool
    channels_last: bool
    workers: int
    step: int = 0
    best_metric: float | None = None
    started_from: dict[str, Any] | None = None
    last_saved: int | None = None  # the step last.pt holds
    val_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    log: RunLog | None = None

    @property
    def writer(self) -> bool:
        return self.rank == 0

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def say(self, msg: str) -> None:
        if self.writer:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)

    def checkpoint(self, path: Path, at: int) -> None:
        save_checkpoint(path, model_name=self.model_name, model_config=self.model_config,
                        model=self.net, optimizer=self.optimizer, scheduler=self.scheduler,
                        step=at, data=self.identity, best_metric=self.best_metric,
                        train_config=self.config.to_dict(), init_from=self.started_from)


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool, world: int) -> None:
    """A resume needs RUN/last.pt (and the same number of processes); a new run an empty or
    missing RUN, unless `overwrite`."""
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise DataError(f"{run_dir}: nothing to resume (no last.pt)")
        check_world_size(run_dir, world)
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise CodecnnError(f"{run_dir}: exists and is not empty; use --resume {run_dir} to "
                           f"continue it or --overwrite to start again")


def setup_run(config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
              overwrite: bool = False, until: int | None = None) -> TrainingRun:
    """Join the torchrun process group, check RUN, and build the data, the model (from
    config.preset, any family), the optimizer and the schedule, at step 0."""
    run_dir = Path(run_dir)
    rank, world, device = _distributed_device(config)
    if config.batch_size is None:  # recorded resolved, so a resume keeps it on any device
        config = dataclasses.replace(config, batch_size=default_batch(device))
    _check_run_dir(run_dir, resume, overwrite, world)
    if until is not None and not 0 < until <= config.steps:
        raise CodecnnError(f"--until {until} must be in 1..--steps ({config.steps})")
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
    amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    return TrainingRun(
        config=config, run_dir=run_dir, rank=rank, world=world, device=device,
        stop_at=until or config.steps, train_ds=train_ds, val_ds=val_ds, monitor_ds=monitor_ds,
        identity=identity, note=note, loss_weights=loss_weights,
        model_name=resolve_preset(config.preset)[0], model_config=config_to_dict(net.config),
        net=net, optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config.warmup_steps, config.steps),
        amp=amp, channels_last=channels_last,
        workers=config.loader_workers(device.type == "cuda"))


def restore_run(run: TrainingRun, resume: bool) -> None:
    """With `resume`, continue from RUN/last.pt: the same model and data, then its weights,
    optimizer, schedule, step, best metric and RNG states. Otherwise start from
    config.init_from's weights (what fits), or from scratch."""
    if not resume:
        if run.config.init_from:
            run.started_from = _init_from(run.net, run.config.init_from)
        return
    ckpt = read_checkpoint(run.last_path)
    run.started_from = ckpt.get("init_from")
    if ckpt["model_name"] != run.model_name or dict(ckpt["model_config"]) != run.model_config:
        raise CodecnnError(
            f"{run.run_dir}: was trained with model {ckpt['model_name']} "
            f"{_short(ckpt['model_config'])}, not {run.config.preset} "
            f"{_short(run.model_config)}")
    if not _same_data(ckpt.get("data") or {}, run.identity):
        raise DataError(f"{run.run_dir}: the data differs from the data the run was trained "
                        f"on (files, sizes or patch counts); an exact resume needs the same")
    run.net.load_state_dict(ckpt["model_state"])
    run.optimizer.load_state_dict(ckpt["optimizer_state"])
    run.scheduler.load_state_dict(ckpt["scheduler_state"])
    run.step, run.best_metric = int(ckpt["step"]), ckpt.get("best_metric")
    run.last_saved = run.step
    set_rng_state(ckpt["rng"])
    if run.step >= run.stop_at:
        raise CodecnnError(f"{run.run_dir}: already at step {run.step}; give a larger --steps "
                           f"to continue it")


def _open_run_dir(run: TrainingRun, resume: bool, command: list[str] | None) -> None:
    """Rank 0: RUN's record of this invocation (config.json, or config.resume-STEP.json),
    command.txt, the logs (cut back to the resumed step) and a word on what starts."""
    if not run.writer:
        return
    config, run_dir = run.config, run.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir)  # checkpoints an interrupted run was writing
    if not resume:
        _clear_run(run_dir)
    record = {"train_config": config.to_dict(), "model_name": run.model_name,
              "model_config": run.model_config, "preset": config.preset,
              "resolved": {"amp_bf16": run.amp, "channels_last": run.channels_last,
                           "warmup_steps": config.warmup_steps, "device": str(run.device),
                           "workers": run.workers, "batch_size": config.batch_size,
                           "world_size": run.world,
                           "global_batch": config.batch_size * run.world,
                           "qp_loss_weights": run.loss_weights},
              "init_from": run.started_from,
              "data": run.identity, "val_note": run.note, "command": command or sys.argv,
              "cwd": os.getcwd(),
              "torch_version": torch.__version__, "codecnn_version": __version__}
    _write_json(run_dir / (f"config.resume-{run.step}.json" if resume else "config.json"),
                record)
    with open(run_dir / "command.txt", "a") as f:
        f.write(command_line(command or sys.argv) + "\n")
    run.log = RunLog(run_dir, resume_step=run.step if resume else None,
                     monitor=run.monitor_ds is not None)
    if run.note:
        run.say(f"train: {run.note}")
    if config.budget_kmac is not None:
        run.say(f"train: {config.budget_kmac} kMAC/px budget: {run.model_name} "
                f"{_short(run.model_config)}")
    if run.started_from and not resume:
        from codecnn.train.init_from import describe

        for line in describe(run.started_from, run.started_from["path"]):
            run.say(f"train: {line}")


@dataclasses.dataclass
class _Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    monitor: torch.utils.data.DataLoader | None


def _make_loaders(run: TrainingRun) -> _Loaders:
    """This process's training draws from run.step on, its share of the validation set and
    of the monitor sample."""
    from codecnn.datasets.shard_dataset import PackedPatches

    config, pin = run.config, run.device.type == "cuda"
    # Packed integers travel (a quarter of the float32 bytes); model_inputs makes the floats
    # on the device.
    train = torch.utils.data.DataLoader(
        PackedPatches(run.train_ds), batch_size=config.batch_size, num_workers=run.workers,
        pin_memory=pin, sampler=_make_sampler(config, run.train_ds, run.rank, run.world,
                                              run.step),
        persistent_workers=run.workers > 0, drop_last=True)
    # Every rank validates its share; on a GPU the workers stay alive between validations
    # (on the CPU one worker comes and goes: an --in-memory copy is not held twice).
    val = validation_loader(run.val_ds, config.batch_size,
                            run.workers if pin else min(run.workers, 1), run.rank, run.world,
                            pin=pin, persistent=pin)
    monitor = None if run.monitor_ds is None else validation_loader(
        run.monitor_ds, config.batch_size, 0, run.rank, run.world, pin=pin)
    return _Loaders(train, val, monitor)


def _parallel(run: TrainingRun) -> torch.nn.Module:
    """What the steps call: the network, in DDP under torchrun, compiled with config.compile.
    Built after restore_run, so DDP broadcasts the restored weights."""
    model: torch.nn.Module = run.net
    if run.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(run.net, device_ids=[run.device.index] if run.device.type == "cuda"
                    else None)
    if run.config.compile:
        model = torch.compile(model)
    return model


def validate(run: TrainingRun, loaders: _Loaders, at: int, elapsed_s: float) -> None:
    """Score the validation set (and the monitor sample) at step `at`. Rank 0 logs the rows,
    keeps best.pt when the mean gain is the best so far, and writes last.pt and the curves;
    the other ranks wait for it."""
    # Every rank scores its part; the all-reduced rows are the same on every rank.
    run.val_rows = evaluate(run.net, loaders.val, run.device, run.amp, run.channels_last)
    monitor_rows = (None if loaders.monitor is None else
                    evaluate(run.net, loaders.monitor, run.device, run.amp, run.channels_last))
    if run.writer:
        run.log.val(at, run.val_rows)
        gain = run.val_rows[-1]["gain"]
        per = "  ".join(f"QP{r['qp']} {r['gain']:+.3f}" for r in run.val_rows[:-1])
        run.say(f"step {at}: validation PSNR-Y gain {gain:+.4f} dB ({per})")
        if monitor_rows is not None:
            run.log.monitor(at, elapsed_s, monitor_rows)
            run.say(f"step {at}: monitor (never used to choose) PSNR-Y gain "
                    f"{monitor_rows[-1]['gain']:+.4f} dB")
        if run.best_metric is None or gain > run.best_metric:
            run.best_metric = gain
            run.checkpoint(run.best_path, at)
        run.checkpoint(run.last_path, at)
        run.last_saved = at
        plot_curves(run.run_dir)
    if run.world > 1:
        torch.distributed.barrier()


class _LossLog:
    """The mean loss and throughput of the steps since the last row of train.csv."""

    def __init__(self, run: TrainingRun, t_start: float) -> None:
        self.run, self.t_start = run, t_start
        self._reset()

    def _reset(self) -> None:
        self.t, self.n = time.perf_counter(), 0
        self.total = torch.zeros((), device=self.run.device)

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach()
        self.n += 1

    def write(self, bar) -> None:
        run = self.run
        mean_loss = self.total / self.n
        if run.world > 1:
            torch.distributed.all_reduce(mean_loss)
            mean_loss /= run.world
        now = time.perf_counter()
        row = {"step": run.step, "lr": run.scheduler.get_last_lr()[0],
               "loss": float(mean_loss), "elapsed_s": round(now - self.t_start, 3),
               "patches_per_s": round(self.n * run.config.batch_size * run.world
                                      / (now - self.t), 2)}
        if run.writer:
            run.log.train(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}")
        self._reset()


def _stop_if_not_finite(run: TrainingRun, flag: torch.Tensor, loss: torch.Tensor,
                        check_every: int) -> None:
    """Raise NonFiniteLoss when a loss since the last check was NaN/inf (on any rank)."""
    if run.world > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    if flag.item() <= 0:
        return
    kept = (f"{run.last_path} keeps step {run.last_saved}, the last good checkpoint"
            if run.last_saved is not None else "no checkpoint had been written yet")
    when = ("stopped before updating the weights" if check_every == 1 else
            f"found at the check of step {run.step + 1} (checked every "
            f"{check_every} steps on {run.device.type})")
    raise NonFiniteLoss(f"{run.run_dir}: training loss is {loss.item()} at step "
                        f"{run.step + 1}; {when}; {kept}")


def fit(run: TrainingRun, model: torch.nn.Module, loaders: _Loaders,
        progress: bool = True) -> float:
    """Optimizer steps from run.step to run.stop_at, logging every log_every steps and
    validating every val_every steps and at the end; the seconds it took."""
    from tqdm import tqdm

    from codecnn.datasets.shard_dataset import model_inputs

    config, device, ds = run.config, run.device, run.train_ds
    t_start = time.perf_counter()
    losses = _LossLog(run, t_start)
    bar = tqdm(total=run.stop_at, initial=run.step, desc="train", unit="step",
               dynamic_ncols=True, disable=None if (run.writer and progress) else True,
               file=sys.stderr)
    flag = torch.zeros(1, device=device)
    qp_weight = None
    if run.loss_weights is not None:  # a look-up table on the device: no copy that waits
        w = run.loss_weights
        qp_weight = torch.zeros(max(w) + 1).index_put_(
            (torch.tensor(list(w)),), torch.tensor(list(w.values()))).to(device)
    # On the CPU the check is free: stop before a non-finite loss touches the weights. On a
    # GPU, reading the flag waits for the step to finish, so it is read every log_every steps
    # and before every checkpoint; checkpoints refuse non-finite weights, so last.pt always
    # holds the last good step.
    check_every = 1 if device.type == "cpu" else config.log_every
    model.train()
    try:
        batches = iter(loaders.train)
        while run.step < run.stop_at:
            batch = next(batches)
            x, target, valid = model_inputs(batch, ds.planes, ds.peak, ds.border, device,
                                            run.channels_last)
            with _autocast(device, run.amp):
                pred = model(x)
            weight = (None if qp_weight is None else
                      qp_weight[batch["nominal_qp"].to(device, non_blocking=True)])
            loss = compute_loss(pred, target, valid, config.loss, weight)
            flag += (~torch.isfinite(loss.detach())).float()
            nxt = run.step + 1
            if nxt % check_every == 0 or nxt % config.val_every == 0 or nxt == run.stop_at:
                _stop_if_not_finite(run, flag, loss, check_every)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(run.net.parameters(), config.grad_clip)
            run.optimizer.step()
            run.scheduler.step()
            run.step += 1
            losses.add(loss)
            bar.update(1)
            if run.step % config.log_every == 0 or run.step == run.stop_at:
                losses.write(bar)
            if run.step % config.val_every == 0 or run.step == run.stop_at:
                validate(run, loaders, run.step, time.perf_counter() - t_start)
    finally:
        bar.close()
    return time.perf_counter() - t_start


def train_model(config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
                overwrite: bool = False, until: int | None = None,
                command: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or, with resume, continue) a filter of any family (config.preset names it);
    returns a summary dict: setup_run, restore_run, fit (which calls validate).

    Summary: run, step, steps, best_metric (mean validation gain in dB, higher is better),
    val (rows of the last validation: qp, sequences, pictures, psnr_rec, psnr_filt, gain),
    val_note, seconds, patches_per_s. Raises NonFiniteLoss when the loss stops being finite.
    """
    run = setup_run(config, run_dir, resume=resume, overwrite=overwrite, until=until)
    try:
        restore_run(run, resume)
        model = _parallel(run)
        start_step = run.step
        _open_run_dir(run, resume, command)
        seconds = fit(run, model, _make_loaders(run), progress)
    finally:
        if run.log:
            run.log.close()
        if run.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return {"run": str(run.run_dir), "step": run.step, "steps": run.config.steps,
            "best_metric": run.best_metric, "val": run.val_rows, "val_note": run.note,
            "seconds": round(seconds, 2),
            "patches_per_s": round((run.step - start_step) * run.config.batch_size * run.world
                                   / max(seconds, 1e-9), 2)}


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
