"""In-loop filter networks: one explicit name → (model class, config class) table and presets.

    from codecnn.models import MODELS, PRESETS, build_model, load_model
    model = build_model("rdn-s", planes=("rec", "qp"))
    model = build_model("imdn", budget_kmac=30)      # a family sized to 30 kMAC/px
    model, meta = load_model("RUN/best.pt")

Every family takes the same input planes through the same unpadded border head and predicts
the same residual from a zero-initialised tail (codecnn.models.common).

A checkpoint stores the model name and its config as a plain dict, so loading rebuilds the
exact network without guessing hyperparameters from weight shapes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from codecnn.errors import CodecnnError, DataError
from codecnn.models.budget import fit_budget
from codecnn.models.imdn import IMDN, IMDNConfig
from codecnn.models.lop import LOP, LOPConfig
from codecnn.models.mobile import MobileConfig, MobileNet
from codecnn.models.rcan import RCAN, RCANConfig
from codecnn.models.rdn import KNOWN_PLANES, RDB, RDN, RDNConfig
from codecnn.models.registry import MODELS, model_from_config
from codecnn.models.resnet import ResNet, ResNetConfig

# Presets from the research notes this project grew from: name → (model name, config).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # 32 maps, 3 RDBs × 6 layers, g=16: +0.15 dB reported on VVC.
    "rdn-s": ("rdn", {"features": 32, "blocks": 3, "layers": 6, "growth": 16}),
    # 32 maps, 4 RDBs × 6 layers, g=24: +0.20 dB reported.
    "rdn-m": ("rdn", {"features": 32, "blocks": 4, "layers": 6, "growth": 24}),
    # 64 maps, 4 × 6, g=24, body at half resolution (UnPixelShuffle/PixelShuffle): +0.08 dB.
    "rdn-ds": ("rdn", {"features": 64, "blocks": 4, "layers": 6, "growth": 24, "updown": True}),
    # Sized for a 2-core CPU: 24 maps, 3 RDBs × 4 layers, g=12, body at half resolution
    # (about 28 kMAC/px); the recipe of the shipped VVC model.
    "rdn-cpu": ("rdn", {"features": 24, "blocks": 3, "layers": 4, "growth": 12,
                        "updown": True}),
    # The same cost with the body at full resolution: 11 maps, 3 RDBs × 6 layers, g=6 (about
    # 30 kMAC/px). Trained alike on HEVC for the same wall time it gained about twice what
    # rdn-cpu did on the held-out set (BENCHMARKS.md, "Half against full resolution").
    "rdn-cpu-full": ("rdn", {"features": 11, "blocks": 3, "layers": 6, "growth": 6}),
}

# Keys every checkpoint written by codecnn.train holds.
CHECKPOINT_KEYS = (
    "model_name", "model_config", "model_state", "optimizer_state", "scheduler_state",
    "step", "rng", "data", "best_metric", "codecnn_version",
)

__all__ = [
    "CHECKPOINT_KEYS", "IMDN", "KNOWN_PLANES", "LOP", "MODELS", "PRESETS", "RCAN", "RDB",
    "RDN", "IMDNConfig", "LOPConfig", "MobileConfig", "MobileNet", "RCANConfig", "RDNConfig",
    "ResNet", "ResNetConfig", "build_model", "config_to_dict", "load_model",
    "model_from_config", "resolve_config", "resolve_preset",
]


def resolve_preset(name: str) -> tuple[str, dict[str, Any]]:
    """Preset or model name → (model name, config overrides). CodecnnError when unknown."""
    if name in PRESETS:
        model_name, cfg = PRESETS[name]
        return model_name, dict(cfg)
    if name in MODELS:
        return name, {}
    known = ", ".join([*PRESETS, *MODELS])
    raise CodecnnError(f"unknown model or preset {name!r} (known: {known})")


def build_model(name: str, planes: tuple[str, ...] | None = None,
                budget_kmac: float | None = None, **overrides: Any):
    """Preset ("rdn-s", "rdn-m", "rdn-ds") or model name ("rdn", "imdn", ...) → a freshly
    initialised nn.Module with `.config`. `planes` (default ("rec", "qp")) and `overrides`
    (any config field, e.g. features=8) replace the preset's values; `budget_kmac` then
    scales the family's width (or depth) to that many kMAC/px within ±5 %, leaving the
    fields given in `overrides` as they are."""
    return model_from_config(*resolve_config(name, planes, budget_kmac, **overrides))


def resolve_config(name: str, planes: tuple[str, ...] | None = None,
                   budget_kmac: float | None = None,
                   **overrides: Any) -> tuple[str, dict[str, Any]]:
    """(model name, config dict) that build_model(same arguments) builds."""
    model_name, cfg = resolve_preset(name)
    if planes is not None:
        cfg["planes"] = tuple(planes)
    cfg.update(overrides)
    if budget_kmac is not None:
        model_from_config(model_name, cfg)  # a bad option is reported as such, not as cost
        cfg = fit_budget(model_name, cfg, budget_kmac, fixed=tuple(overrides))
    return model_name, cfg


def config_to_dict(config) -> dict[str, Any]:
    """A model config as plain types (tuples become lists) for checkpoints and JSON."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def read_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict (a path or zoo:NAME) with weights_only=True; DataError naming
    the file if it is
    missing, truncated, not a torch file or lacks model_name/model_config/model_state."""
    import torch

    from codecnn.zoo import resolve_model_path

    path = resolve_model_path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, foreign formats: all one message
        msg = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
        raise DataError(
            f"{path}: not a readable checkpoint (truncated or corrupt? {msg})"
        ) from None
    if not isinstance(ckpt, dict):
        raise DataError(f"{path}: not a codecnn checkpoint (holds a {type(ckpt).__name__})")
    missing = [k for k in ("model_name", "model_config", "model_state") if k not in ckpt]
    if missing:
        raise DataError(f"{path}: not a codecnn checkpoint (missing {', '.join(missing)})")
    return ckpt


def load_model(path: str | os.PathLike, map_location: str = "cpu"):
    """Rebuild the model stored in a checkpoint and load its weights.

    Returns (model in eval mode, meta) where meta holds model_name, model_config, step,
    data (the training data's identity), best_metric and codecnn_version (None if absent).
    """
    ckpt = read_checkpoint(path, map_location)
    try:
        model = model_from_config(ckpt["model_name"], dict(ckpt["model_config"]))
    except CodecnnError as e:
        raise DataError(f"{path}: {e}") from None
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise DataError(f"{path}: weights do not fit the stored config ({str(e)[:120]})") from None
    model.eval()
    meta = {k: ckpt.get(k) for k in CHECKPOINT_KEYS
            if k not in ("model_state", "optimizer_state", "scheduler_state", "rng")}
    return model, meta
