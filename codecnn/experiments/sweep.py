"""Bayesian optimisation of training hyper-parameters (`codecnn sweep`).

    SWEEP/sweep.json            the settings (space, data, seed, steps, init points)
    SWEEP/trial_000/            a real training run (codecnn.train.train_model) plus
        trial.json              its parameters, written before it trains
        result.json             its score, written when it has finished
    SWEEP/results.{md,json,csv}     the table, rewritten after every trial
    SWEEP/scores.png, tb/           score against each parameter, TensorBoard HParams

Each trial's parameters are a pure function of (seed, trial number, the parameters and scores
of the trials before it): the first `init_points` trials are random draws of a generator
seeded by (seed, trial), the later ones the suggestion (upper confidence bound) of a fresh
bayes_opt optimiser seeded the same way with every earlier trial registered. Nothing else
carries state, so a sweep killed anywhere and run again rebuilds the optimiser from the
finished trials and proposes exactly what the uninterrupted sweep would have; an unfinished
trial continues from its last checkpoint (train_model's exact resume) with the parameters its
trial.json recorded. The score is the trial's best validation PSNR-Y gain (best_metric, dB,
the mean over QPs), the number train_model chooses checkpoints by.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codecnn import __version__
from codecnn.errors import CodecnnError, DataError
from codecnn.experiments.space import SearchSpace, realise, to_point
from codecnn.experiments.sweep_report import write_report
from codecnn.io.atomic import write_json_atomic
from codecnn.train.config import TrainConfig

TRIAL_DIR = re.compile(r"trial_(\d{3,})")
TUPLE_FIELDS = ("planes", "val_sequences", "monitor")
# The score of a trial whose loss stopped being finite before its first validation: the
# network starts as the identity filter (gain 0), and a trial should not look better than it.
DIVERGED_SCORE = 0.0


@dataclass(frozen=True)
class SweepSettings:
    """What decides the trials of a sweep (stored in SWEEP/sweep.json and checked on rerun).

    `planes` are the input planes resolved from the data (they change the first layer's MACs).
    The number of trials is not part of it: a sweep may be extended by asking for more.
    """

    data: tuple[str, ...]
    val: tuple[str, ...] | None
    space: SearchSpace
    steps_per_trial: int
    seed: int
    init_points: int
    planes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"data": list(self.data), "val": None if self.val is None else list(self.val),
                "space": self.space.to_dict(), "steps_per_trial": self.steps_per_trial,
                "seed": self.seed, "init_points": self.init_points,
                "planes": list(self.planes)}


def default_init_points(trials: int) -> int:
    """Random trials before the optimiser takes over: a third of the sweep, 2 to 5."""
    return min(trials, max(2, min(5, trials // 3)))


def resolve_settings(space: SearchSpace, data: list[str], val: list[str] | None,
                     steps_per_trial: int, seed: int, init_points: int) -> SweepSettings:
    """Settings with absolute data paths and the input planes the trials will train on."""
    from codecnn.datasets import ShardDataset
    from codecnn.io.shard import shard_paths

    if steps_per_trial < 1:
        raise CodecnnError(f"--steps-per-trial must be >= 1, got {steps_per_trial}")
    if init_points < 1:
        raise CodecnnError(f"--init-points must be >= 1, got {init_points}")
    if not space.bounds():
        raise CodecnnError("nothing to search: every parameter of the space is fixed")
    paths = shard_paths(list(data))
    planes = space.train.get("planes")
    ds = ShardDataset(paths, planes=tuple(planes) if planes else None)
    ds.close()
    return SweepSettings(
        data=tuple(str(Path(p).resolve()) for p in data),
        val=None if not val else tuple(str(Path(p).resolve()) for p in val),
        space=space, steps_per_trial=int(steps_per_trial), seed=int(seed),
        init_points=int(init_points), planes=tuple(ds.planes))


# ----------------------------------------------------------------------------- proposals


def _trial_seed(seed: int, k: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def _optimizer(space: SearchSpace, seed: int):
    from bayes_opt import BayesianOptimization

    with warnings.catch_warnings():
        # integer and categorical parameters are marked "experimental" by the package
        warnings.simplefilter("ignore")
        return BayesianOptimization(f=None, pbounds=space.bounds(), random_state=seed,
                                    verbose=0, allow_duplicate_points=True)


def _plain_point(space: SearchSpace, point: dict[str, Any]) -> dict[str, Any]:
    """An optimiser point as JSON types (NumPy floats and ints become Python ones)."""
    kinds = space.bounds()
    out: dict[str, Any] = {}
    for key, bound in kinds.items():
        v = point[key]
        if isinstance(bound, list):
            out[key] = str(v)
        elif len(bound) == 3 and bound[2] is int:
            out[key] = int(round(float(v)))
        else:
            out[key] = float(v)
    return out


def propose(settings: SweepSettings, k: int,
            history: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """Trial k's parameters: a seeded random draw while k < init_points, else the optimiser's
    suggestion after registering `history` (point, score) of trials 0..k-1 in order.

    Returns kind ("random" or "bayes"), suggested (the optimiser's point), point (the point
    trained, registered later) and params (lr, features, blocks, crop, loss, kmac).
    """
    space = settings.space
    opt = _optimizer(space, _trial_seed(settings.seed, k))
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on some registers
        if k < settings.init_points:
            kind, suggested = "random", opt.random_sample(1)[0]
        else:
            if len(history) != k:
                raise CodecnnError(f"trial {k} needs the scores of trials 0..{k - 1}")
            for point, score in history:
                opt.register(point, score)
            kind, suggested = "bayes", opt.suggest()
    suggested = _plain_point(space, suggested)
    params = realise(space, suggested, settings.planes)
    return {"trial": k, "kind": kind, "suggested": suggested,
            "point": to_point(space, params), "params": params}


def trial_config(settings: SweepSettings, params: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one trial: the space's fixed training settings, the trial's
    parameters, the sweep's data, seed (the same for every trial, so the trials differ only
    in their hyper-parameters) and steps."""
    space = settings.space
    fixed = dict(space.train)
    for name in TUPLE_FIELDS:
        if fixed.get(name) is not None:
            fixed[name] = tuple(fixed[name])
    steps = settings.steps_per_trial
    fixed.setdefault("val_every", min(500, steps))
    try:
        return TrainConfig(
            data=settings.data, val=settings.val, preset=space.preset,
            model_overrides={**space.model, "features": params["features"],
                             "blocks": params["blocks"]},
            steps=steps, seed=settings.seed, lr=params["lr"], loss=params["loss"],
            crop=params["crop"], **fixed)
    except (TypeError, ValueError) as e:
        raise CodecnnError(f"search space: {e}") from None


# ----------------------------------------------------------------------------- files


def trial_dir(sweep_dir: Path, k: int) -> Path:
    return sweep_dir / f"trial_{k:03d}"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None


def finished_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every trial with a result, in trial order: trial.json merged with result.json."""
    out = []
    dirs = [p for p in sweep_dir.glob("trial_*") if TRIAL_DIR.fullmatch(p.name)]
    for d in sorted(dirs, key=lambda p: int(TRIAL_DIR.fullmatch(p.name).group(1))):
        trial, result = _read_json(d / "trial.json"), _read_json(d / "result.json")
        if trial is not None and result is not None:
            out.append({**trial, **result})
    return out


def _history(sweep_dir: Path, k: int) -> list[tuple[dict[str, Any], float]]:
    """(point, score) of trials 0..k-1; CodecnnError naming the first without a result."""
    done = {t["trial"]: t for t in finished_trials(sweep_dir)}
    missing = [j for j in range(k) if j not in done]
    if missing:
        raise CodecnnError(
            f"{trial_dir(sweep_dir, missing[0])}: trial {k} is chosen by the optimiser from "
            f"the results of trials 0..{k - 1}, and trial {missing[0]} has none yet "
            f"(run it first)")
    return [(done[j]["point"], float(done[j]["score"])) for j in range(k)]


def _check_settings(sweep_dir: Path, settings: SweepSettings, overwrite: bool,
                    command: list[str] | None, writer: bool) -> None:
    """Create SWEEP/sweep.json, or check that a rerun asks for the same sweep."""
    path = sweep_dir / "sweep.json"
    old = _read_json(path)
    mine = settings.to_dict()
    if old is not None and not overwrite:
        theirs = old.get("settings", {})
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if changed:
            raise CodecnnError(
                f"{path}: this sweep was started with other {', '.join(changed)}; rerun it "
                f"with the same settings (only --trials may change) or use --overwrite")
        return
    if not writer:
        return
    if old is not None or (sweep_dir.exists() and any(sweep_dir.iterdir())):
        if not overwrite:
            raise CodecnnError(f"{sweep_dir}: exists and is not a sweep; use another "
                               f"directory or --overwrite")
        _clear_sweep(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"settings": mine, "command": command or sys.argv,
                             "codecnn_version": __version__})


def _clear_sweep(sweep_dir: Path) -> None:
    """Remove what an earlier sweep wrote (only this module's files)."""
    for p in sweep_dir.iterdir():
        if p.is_dir() and (TRIAL_DIR.fullmatch(p.name) or p.name == "tb"):
            shutil.rmtree(p)
        elif p.name in ("sweep.json", "results.md", "results.json", "results.csv",
                        "scores.png"):
            p.unlink()


# ----------------------------------------------------------------------------- running


def run_trial(settings: SweepSettings, sweep_dir: Path, k: int, *, writer: bool = True,
              progress: bool = True, command: list[str] | None = None) -> dict[str, Any]:
    """Run (or continue, or just read) trial k; returns trial.json merged with result.json."""
    from codecnn.models import read_checkpoint
    from codecnn.train import NonFiniteLoss, load_run_config, train_model

    tdir = trial_dir(sweep_dir, k)
    trial, result = _read_json(tdir / "trial.json"), _read_json(tdir / "result.json")
    if trial is not None and result is not None:
        return {**trial, **result}
    if trial is None:
        history = _history(sweep_dir, k) if k >= settings.init_points else []
        trial = propose(settings, k, history)
        if writer:
            tdir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(tdir / "trial.json", trial)
    config = trial_config(settings, trial["params"])
    last = tdir / "last.pt"
    step = int(read_checkpoint(last)["step"]) if last.is_file() else None
    status, val_rows = "done", []
    try:
        if step is None:
            s = train_model(config, tdir, overwrite=True, command=command, progress=progress)
        elif step < config.steps:
            # the config the run started with (written by train_model), not a rebuilt one
            s = train_model(load_run_config(tdir), tdir, resume=True, command=command,
                            progress=progress)
        else:  # trained to the end, killed before its result was written
            s = {"best_metric": read_checkpoint(last).get("best_metric"), "val": []}
        best, val_rows = s["best_metric"], s["val"]
    except NonFiniteLoss as e:
        status = "diverged"
        best = read_checkpoint(last).get("best_metric") if last.is_file() else None
        _say(f"sweep: trial {k} diverged ({str(e).splitlines()[0]})")
    score = DIVERGED_SCORE if best is None else float(best)
    result = {"status": status, "score": score, "best_metric": best, "val": val_rows,
              "steps": config.steps}
    if writer:
        write_json_atomic(tdir / "result.json", result)
    return {**trial, **result}


def _say(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def run_sweep(settings: SweepSettings, sweep_dir: str | os.PathLike, trials: int, *,
              only_trial: int | None = None, overwrite: bool = False,
              command: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run a sweep of `trials` trials in SWEEP (or only trial `only_trial`), resuming whatever
    an earlier invocation left; writes the report after each trial and returns it.

    Under torchrun (WORLD_SIZE > 1) only one trial per invocation is allowed (`only_trial`):
    every rank computes the same proposal, trains its share, and rank 0 writes.
    """
    from tqdm import tqdm

    sweep_dir = Path(sweep_dir)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1 and only_trial is None:
        raise CodecnnError("under torchrun run one trial per launch (--trial N): each "
                           "trial's training is one distributed job")
    if trials < 1:
        raise CodecnnError(f"--trials must be >= 1, got {trials}")
    if only_trial is not None and only_trial < 0:
        raise CodecnnError(f"--trial must be >= 0, got {only_trial}")
    writer = rank == 0
    _check_settings(sweep_dir, settings, overwrite, command, writer)
    todo = [only_trial] if only_trial is not None else list(range(trials))
    bar = tqdm(todo, desc="sweep", unit="trial", file=sys.stderr, dynamic_ncols=True,
               disable=None if (progress and writer) else True)
    report: dict[str, Any] = {}
    for k in bar:
        done = run_trial(settings, sweep_dir, k, writer=writer, progress=progress,
                         command=command)
        p = done["params"]
        if writer:
            _say(f"sweep: trial {k} ({done['kind']}): lr {p['lr']:.3g}, "
                 f"features {p['features']}, blocks {p['blocks']}, crop {p['crop'] or 'CTU'}, "
                 f"loss {p['loss']}, {p['kmac']:.1f} kMAC/px → {done['score']:+.4f} dB "
                 f"({done['status']})")
            report = write_report(sweep_dir, settings, finished_trials(sweep_dir),
                                  figures=False)
    bar.close()
    if writer:
        report = write_report(sweep_dir, settings, finished_trials(sweep_dir))
    return report
