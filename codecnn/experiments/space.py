"""The search space of a sweep: what is searched, what is fixed, and the complexity range.

A space file is a small JSON object (every key optional; flags of `codecnn sweep` override it):

    {
      "lr": [1e-4, 3e-3],        searched on a log scale (one number: fixed)
      "features": [8, 32],       width F of the network (integer)
      "blocks": [1, 3],          residual dense blocks (integer)
      "crop": [32, 128],         training crop side (integer, snapped to even; null: whole CTUs)
      "loss": ["mse", "l1"],     categorical (one name: fixed)
      "kmac": [10, 40],          admissible kMAC/px of every trial's network (null: any)
      "preset": "rdn-cpu",       the architecture the searched values override
      "model": {"layers": 4},    further fixed model options
      "train": {"batch_size": 16, "val_every": 250}   fixed TrainConfig fields
    }

The optimiser sees log10(lr), F, blocks, crop and loss. Until a complexity budget holds the
MACs fixed, the width is what keeps a trial inside the kMAC range: a suggested F is moved to
the nearest width whose network costs lo..hi kMAC/px at the suggested block count (kMAC/px
counted by codecnn.models.complexity, the project's one definition). The optimiser is told
the point that was trained, not the one it suggested.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from codecnn.errors import CodecnnError
from codecnn.train.config import LOSSES, TrainConfig

SEARCHED = ("lr", "features", "blocks", "crop", "loss")
FILE_KEYS = (*SEARCHED, "kmac", "preset", "model", "train")
# TrainConfig fields a sweep sets itself (per trial or from its own options).
OWNED_TRAIN_FIELDS = ("data", "val", "preset", "model_overrides", "steps", "seed", "lr", "loss",
                      "crop", "init_from")


@dataclass(frozen=True)
class SearchSpace:
    """Bounds of the searched hyper-parameters (lo == hi: fixed) and the fixed rest."""

    lr: tuple[float, float] = (1e-4, 3e-3)
    features: tuple[int, int] = (8, 32)
    blocks: tuple[int, int] = (1, 3)
    crop: tuple[int, int] | None = (32, 128)
    loss: tuple[str, ...] = ("mse", "l1")
    kmac: tuple[float, float] | None = None
    preset: str = "rdn-cpu"
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lo, hi = self.lr
        if not 0 < lo <= hi:
            raise ValueError(f"lr bounds must be 0 < LOW <= HIGH, got {lo}, {hi}")
        for name in ("features", "blocks"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} bounds must be 1 <= LOW <= HIGH, got {lo}, {hi}")
        if self.crop is not None and not 4 <= self.crop[0] <= self.crop[1] <= 128:
            raise ValueError(f"crop bounds must be 4 <= LOW <= HIGH <= 128, got "
                             f"{self.crop[0]}, {self.crop[1]}")
        if not self.loss or any(x not in LOSSES for x in self.loss) \
                or len(set(self.loss)) != len(self.loss):
            raise ValueError(f"loss must be distinct names of {LOSSES}, got {list(self.loss)}")
        if self.kmac is not None and not 0 <= self.kmac[0] <= self.kmac[1]:
            raise ValueError(f"kmac range must be 0 <= LOW <= HIGH, got {list(self.kmac)}")
        clash = sorted(set(self.train) & set(OWNED_TRAIN_FIELDS))
        if clash:
            raise ValueError(f"train: {', '.join(clash)} are set by the sweep itself")
        clash = sorted(set(self.model) & {"features", "blocks", "planes"})
        if clash:
            raise ValueError(f"model: {', '.join(clash)} are searched or come from the data")
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train) - names)
        if unknown:
            raise ValueError(f"train: unknown field(s) {', '.join(unknown)}")

    def bounds(self) -> dict[str, Any]:
        """pbounds for bayes_opt: the searched parameters only (a fixed one is left out)."""
        out: dict[str, Any] = {}
        if self.lr[0] < self.lr[1]:
            out["log10_lr"] = (math.log10(self.lr[0]), math.log10(self.lr[1]))
        for name in ("features", "blocks"):
            lo, hi = getattr(self, name)
            if lo < hi:
                out[name] = (lo, hi, int)
        if self.crop is not None and self.crop[0] < self.crop[1]:
            out["crop"] = (self.crop[0], self.crop[1], int)
        if len(self.loss) > 1:
            out["loss"] = list(self.loss)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def read_space_file(path: str | Path) -> dict[str, Any]:
    """The JSON object of a space file; CodecnnError naming the file when it is unusable."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except OSError as e:
        raise CodecnnError(f"{path}: cannot read the search space ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise CodecnnError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(d, dict):
        raise CodecnnError(f"{path}: the search space must be a JSON object")
    unknown = sorted(set(d) - set(FILE_KEYS))
    if unknown:
        raise CodecnnError(f"{path}: unknown key(s) {', '.join(unknown)} "
                           f"(known: {', '.join(FILE_KEYS)})")
    return d


def make_space(file_values: dict[str, Any], flags: dict[str, Any],
               where: str = "search space") -> SearchSpace:
    """A SearchSpace from a space file's values overridden by flags (None: not given).

    Numbers may be one value (fixed) or [LOW, HIGH]; loss one name or a list.
    """
    merged = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    kw: dict[str, Any] = {}
    try:
        for name, kind in (("lr", float), ("features", int), ("blocks", int)):
            if name in merged:
                kw[name] = _pair(merged[name], kind, name)
        if "crop" in merged:
            kw["crop"] = None if merged["crop"] is None else _pair(merged["crop"], int, "crop")
        if "kmac" in merged:
            kw["kmac"] = None if merged["kmac"] is None else _pair(merged["kmac"], float, "kmac")
        if "loss" in merged:
            loss = merged["loss"]
            kw["loss"] = (tuple(x for x in loss.replace(" ", "").split(",") if x)
                          if isinstance(loss, str) else tuple(str(x) for x in loss))
        for name in ("model", "train"):
            if name in merged:
                if not isinstance(merged[name], dict):
                    raise ValueError(f"{name} must be an object of fixed settings")
                kw[name] = dict(merged[name])
        if "preset" in merged:
            kw["preset"] = str(merged["preset"])
        return SearchSpace(**kw)
    except (TypeError, ValueError) as e:
        raise CodecnnError(f"{where}: {e}") from None


def _pair(value: Any, kind: type, name: str) -> tuple:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, list | tuple):
        value = [value]
    if len(value) not in (1, 2):
        raise ValueError(f"{name} takes one value or LOW,HIGH, got {value}")
    try:
        nums = [kind(float(v)) if kind is int else kind(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes numbers, got {value}") from None
    if kind is int and any(float(v) != int(float(v)) for v in value):
        raise ValueError(f"{name} takes integers, got {value}")
    return (nums[0], nums[-1])


# ----------------------------------------------------------------------------- complexity


@lru_cache(maxsize=512)
def _kmac(preset: str, planes: tuple[str, ...], overrides: tuple[tuple[str, Any], ...]) -> float:
    import torch

    from codecnn.models import build_model
    from codecnn.models.complexity import count_macs

    def count() -> float:
        net = build_model(preset, planes=planes, **dict(overrides))
        b, c = int(net.config.border), 128
        x = torch.zeros(1, len(planes), c + 2 * b, c + 2 * b)
        return sum(r["macs"] for r in count_macs(net, x)) / (c * c) / 1000.0

    try:
        # Fake tensors carry shapes only: the count is the same and a wide model costs no
        # real forward pass (the width search below counts a few dozen networks).
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode():
            return count()
    except Exception:  # a torch without fake tensors, or an op they lack: count for real
        return count()


def model_kmac(preset: str, planes: tuple[str, ...], overrides: dict[str, Any]) -> float:
    """kMAC per output pixel of the 128×128 CTU of a network (codecnn.models.complexity)."""
    return _kmac(preset, tuple(planes), tuple(sorted(overrides.items())))


def admissible_widths(space: SearchSpace, planes: tuple[str, ...],
                      blocks: int) -> tuple[int, int] | None:
    """The widths (lo, hi) within the space whose network at `blocks` costs kmac[0]..kmac[1]
    kMAC/px, or None when there is none. kMAC/px grows with the width: two binary searches."""
    lo_w, hi_w = space.features
    if space.kmac is None:
        return lo_w, hi_w

    def cost(w: int) -> float:
        return model_kmac(space.preset, planes, {**space.model, "features": w, "blocks": blocks})

    k_lo, k_hi = space.kmac
    a, b = lo_w, hi_w + 1  # first width costing at least k_lo
    while a < b:
        m = (a + b) // 2
        a, b = (m + 1, b) if cost(m) < k_lo else (a, m)
    first = a
    a, b = lo_w - 1, hi_w  # last width costing at most k_hi
    while a < b:
        m = (a + b + 1) // 2
        a, b = (m, b) if cost(m) <= k_hi else (a, m - 1)
    last = a
    return (first, last) if lo_w <= first <= last <= hi_w else None


def realise(space: SearchSpace, point: dict[str, Any],
            planes: tuple[str, ...]) -> dict[str, Any]:
    """The trial parameters of an optimiser point (missing keys: the fixed values).

    Returns lr, features, blocks, crop (None: whole CTUs), loss and kmac (per pixel). The
    width is moved into the kMAC range (at the nearest block count that has one, when the
    suggested count has none); the crop is snapped to an even side (the half-resolution body
    of updown models needs one).
    """
    lr = 10 ** float(point["log10_lr"]) if "log10_lr" in point else space.lr[0]
    features = int(point.get("features", space.features[0]))
    blocks = int(point.get("blocks", space.blocks[0]))
    crop = None
    if space.crop is not None:
        crop = int(point.get("crop", space.crop[0]))
        crop = min(max(2 * round(crop / 2), space.crop[0] + space.crop[0] % 2),
                   space.crop[1] - space.crop[1] % 2)
    loss = str(point.get("loss", space.loss[0]))
    lo_b, hi_b = space.blocks
    for b in sorted(range(lo_b, hi_b + 1), key=lambda v: (abs(v - blocks), v)):
        widths = admissible_widths(space, planes, b)
        if widths is not None:
            blocks, features = b, min(max(features, widths[0]), widths[1])
            break
    else:
        raise CodecnnError(
            f"no network with features {space.features[0]}..{space.features[1]} and blocks "
            f"{lo_b}..{hi_b} of preset {space.preset} costs {space.kmac[0]:g}.."
            f"{space.kmac[1]:g} kMAC/px: widen --features or the --kmac range")
    kmac = model_kmac(space.preset, planes, {**space.model, "features": features,
                                             "blocks": blocks})
    return {"lr": lr, "features": features, "blocks": blocks, "crop": crop, "loss": loss,
            "kmac": round(kmac, 3)}


def to_point(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """The optimiser point of trial parameters (the searched keys of `space.bounds()`)."""
    full = {"log10_lr": math.log10(params["lr"]), "features": params["features"],
            "blocks": params["blocks"], "crop": params["crop"], "loss": params["loss"]}
    return {k: full[k] for k in space.bounds()}
