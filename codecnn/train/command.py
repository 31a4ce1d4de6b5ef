"""The `codecnn train` command line that reproduces a TrainConfig.

A run started from Python (the demo, the zoo, a sweep) records this line in RUN/command.txt,
so what is written there is a command a user can paste into a shell, not a function call.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from codecnn.train.config import TrainConfig

# TrainConfig field → flag. Booleans with a --no- form are written as the one that holds.
_VALUE_FLAGS = {
    "preset": "--preset", "steps": "--steps", "batch_size": "--batch-size", "seed": "--seed",
    "lr": "--lr", "weight_decay": "--weight-decay", "warmup": "--warmup", "loss": "--loss",
    "grad_clip": "--grad-clip", "val_every": "--val-every", "log_every": "--log-every",
    "amp": "--amp", "workers": "--workers", "device": "--device", "sampling": "--sampling",
    "crop": "--crop", "qp_weighting": "--qp-weighting", "init_from": "--init-from",
    "budget_kmac": "--budget-kmac",
}
_SWITCHES = {"channels_last": "channels-last", "compile": "compile", "dihedral": "dihedral"}
_FLAGS = {"in_memory": "--in-memory", "full_ctus_only": "--full-ctus-only"}
_MODEL_FLAGS = {"features": "--features", "blocks": "--blocks", "layers": "--layers",
                "growth": "--growth"}


def train_command(config: TrainConfig, run_dir: str) -> list[str]:
    """`codecnn train MODEL ... -o RUN`: every field that differs from TrainConfig's default.

    ValueError for model overrides the command line cannot express (say, border).
    """
    from codecnn.models import resolve_preset

    model, _ = resolve_preset(config.preset)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    args: list[str] = ["codecnn", "train", model]
    for path in config.data:
        args += ["--data", path]
    for path in config.val or ():
        args += ["--val", path]
    for path in config.monitor or ():
        args += ["--monitor", path]
    if config.planes:
        args += ["--planes", ",".join(config.planes)]
    if config.val_sequences:
        args += ["--val-sequences", ",".join(config.val_sequences)]
    for name, weight in sorted(config.source_weights.items()):
        args += ["--source-weight", f"{name}={weight:g}"]
    unknown = sorted(set(config.model_overrides) - set(_MODEL_FLAGS))
    if unknown:
        raise ValueError(f"model options {', '.join(unknown)} have no command-line flag")
    for key, flag in _MODEL_FLAGS.items():
        if key in config.model_overrides:
            args += [flag, str(config.model_overrides[key])]
    values: dict[str, Any] = dataclasses.asdict(config)
    for key, flag in _VALUE_FLAGS.items():
        if values[key] is not None and values[key] != defaults.get(key):
            args += [flag, _text(values[key])]
    for key, name in _SWITCHES.items():
        if values[key] is not None and values[key] != defaults.get(key):
            args.append(f"--{name}" if values[key] else f"--no-{name}")
    for key, flag in _FLAGS.items():
        if values[key]:
            args.append(flag)
    return [*args, "-o", str(run_dir)]


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def command_line(args: list[str]) -> str:
    """The argument list as one shell line (quoted where needed)."""
    return shlex.join(args)
