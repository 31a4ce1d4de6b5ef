"""Sizing a family to a complexity budget: the width (or depth) that lands on K kMAC/px.

JVET's NN exploration judges filters by BD-rate against kMAC per pixel, so families are
compared at equal cost. Each family names the knob that scales it (its width, or its depth
where the width is fixed by design, as LOP's) and a second knob used only when the first
alone cannot land within the tolerance (integer widths are coarse on thin networks). The
cost is counted by `codecnn.models.complexity.count_macs` on the meta device: shapes only,
no arithmetic, so a search of a few dozen candidates takes well under a second.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from codecnn.errors import CodecnnError
from codecnn.models.complexity import count_macs
from codecnn.models.registry import MODELS, model_from_config

TOLERANCE = 0.05

# family → (primary knob, secondary knob, fields scaled with the primary in proportion).
KNOBS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "rdn": ("features", "blocks", ("growth",)),
    "resnet": ("features", "blocks", ()),
    "imdn": ("features", "blocks", ()),
    "rcan": ("features", "blocks", ()),
    "mobile": ("features", "blocks", ()),
    "lop": ("layers", "features", ()),
}
_MAX = {"features": 512, "blocks": 64, "layers": 64}
_MIN = {"features": 4}


def config_kmac(model_name: str, config: dict[str, Any], ctu: int = 128) -> float:
    """kMAC per output pixel of the model `config` builds, on a (ctu + 2·border)² tile."""
    _, cfg_cls = MODELS[model_name]
    border = config.get("border", next(f.default for f in dataclasses.fields(cfg_cls)
                                       if f.name == "border"))
    planes = config.get("planes", ("rec", "qp"))
    with torch.device("meta"):
        model = model_from_config(model_name, config)
        x = torch.empty(1, len(planes), ctu + 2 * border, ctu + 2 * border)
    return sum(r["macs"] for r in count_macs(model, x)) / (ctu * ctu) / 1000.0


def fit_budget(model_name: str, config: dict[str, Any], kmac: float,
               fixed: tuple[str, ...] = (), ctu: int = 128) -> dict[str, Any]:
    """`config` with its scaling knob(s) set so the model costs kmac kMAC/px within ±5 %.

    The primary knob is searched (bisection: cost grows with it) at the config's secondary
    value, then at secondary values ever farther from it until one lands. Fields named in
    `fixed` (the ones a user set by hand) are not moved. CodecnnError when nothing lands,
    naming the nearest cost found.
    """
    if model_name not in KNOBS:
        raise CodecnnError(f"model {model_name!r} has no budget scaling")
    if not kmac > 0:
        raise CodecnnError(f"--budget-kmac must be > 0, got {kmac}")
    primary, secondary, tied = KNOBS[model_name]
    if primary in fixed:
        primary, secondary, tied = secondary, primary, ()
    if primary in fixed:
        raise CodecnnError(f"--budget-kmac scales {model_name}'s {primary} or {secondary}; "
                           f"both are set by hand")
    defaults = {f.name: f.default for f in dataclasses.fields(MODELS[model_name][1])}
    base = {**defaults, **config}
    ratios = {t: base[t] / base[primary] for t in tied}
    s0 = int(base[secondary])
    seconds = [s0] if secondary in fixed else sorted(
        range(_MIN.get(secondary, 1), _MAX[secondary] + 1), key=lambda s: (abs(s - s0), s))
    best: tuple[float, dict[str, Any], float] | None = None
    too_deep = None  # cost grows with the secondary knob too: past this, nothing fits
    for s in seconds:
        if too_deep is not None and s >= too_deep:
            continue
        def cfg_at(p: int, s: int = s) -> dict[str, Any]:
            return {**base, primary: p, secondary: s,
                    **{t: max(1, round(r * p)) for t, r in ratios.items()}}

        lo, hi = _MIN.get(primary, 1), _MAX[primary]
        if config_kmac(model_name, cfg_at(lo), ctu) > kmac * (1 + TOLERANCE):
            too_deep = s if too_deep is None else min(too_deep, s)
            continue  # even the thinnest is too expensive at this secondary value
        while hi - lo > 1:  # largest p whose cost stays at or under the target
            mid = (lo + hi) // 2
            if config_kmac(model_name, cfg_at(mid), ctu) <= kmac:
                lo = mid
            else:
                hi = mid
        for p in (lo, hi):
            cost = config_kmac(model_name, cfg_at(p), ctu)
            err = abs(cost / kmac - 1)
            if best is None or err < best[0]:
                best = (err, cfg_at(p), cost)
        if best[0] <= TOLERANCE:
            return best[1]
    near = "nothing" if best is None else f"{best[2]:.1f} kMAC/px at {_knobs(best[1])}"
    raise CodecnnError(f"{model_name}: no configuration within ±{TOLERANCE:.0%} of {kmac} "
                       f"kMAC/px (nearest: {near})")


def _knobs(cfg: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("planes", "border"))
