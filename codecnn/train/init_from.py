"""Start a run from another run's weights (`train --init-from CKPT`).

Every tensor whose name and shape fit is copied. The first convolution is matched by input
plane name, not by position: a plane the parent saw keeps its weights, a plane it did not
see (depth added to a rec + qp model) starts at zero, so at step 0 the new model computes
exactly what the parent computed. A plane the parent had and the new model lacks is
dropped (then the output does change, and the report says so).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

FIRST_CONV = "head.0.weight"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_conv(parent: torch.Tensor, parent_planes: list[str], child: torch.Tensor,
                child_planes: list[str]) -> torch.Tensor | None:
    """The child's first-layer weight built plane by plane from the parent's, or None
    when the two differ in more than the input planes."""
    if parent.shape[0] != child.shape[0] or parent.shape[2:] != child.shape[2:]:
        return None
    out = torch.zeros_like(child)
    for i, plane in enumerate(child_planes):
        if plane in parent_planes:
            out[:, i] = parent[:, parent_planes.index(plane)]
    return out


def load_matching(model: torch.nn.Module, parent_ckpt: dict[str, Any]) -> dict[str, Any]:
    """Copy into `model` every parent tensor that fits; returns what happened:

    loaded (names copied as they are), planes_added (zero-initialised input planes),
    planes_dropped (parent planes the model does not take), skipped (name: why) for the
    model's tensors left at their fresh initialisation.
    """
    parent_state: dict[str, torch.Tensor] = parent_ckpt["model_state"]
    parent_planes = list(parent_ckpt["model_config"].get("planes") or [])
    child_planes = list(getattr(model.config, "planes", []))
    state = model.state_dict()
    loaded: list[str] = []
    skipped: dict[str, str] = {}
    new_state = {}
    for name, tensor in state.items():
        if name not in parent_state:
            skipped[name] = "not in the parent"
            continue
        theirs = parent_state[name]
        if name == FIRST_CONV and parent_planes and child_planes:
            built = _first_conv(theirs, parent_planes, tensor, child_planes)
            if built is None:
                skipped[name] = f"shape {tuple(theirs.shape)} → {tuple(tensor.shape)}"
                continue
            new_state[name] = built
            loaded.append(name)
        elif theirs.shape == tensor.shape:
            new_state[name] = theirs.to(tensor.dtype)
            loaded.append(name)
        else:
            skipped[name] = f"shape {tuple(theirs.shape)} → {tuple(tensor.shape)}"
    model.load_state_dict({**state, **new_state})
    return {
        "loaded": loaded,
        "planes_added": [p for p in child_planes if p not in parent_planes],
        "planes_dropped": [p for p in parent_planes if p not in child_planes],
        "skipped": skipped,
        "unused": sorted(set(parent_state) - set(state)),
    }


def describe(report: dict[str, Any], path: str | Path) -> list[str]:
    """Lines for the terminal: what was loaded from `path` and what was not."""
    lines = [f"init-from {path}: {len(report['loaded'])} tensor(s) loaded"]
    if report["planes_added"]:
        lines.append(f"  new input plane(s) {', '.join(report['planes_added'])}: "
                     "zero weights (output at step 0 equals the parent's)")
    if report["planes_dropped"]:
        lines.append(f"  parent plane(s) {', '.join(report['planes_dropped'])} dropped: "
                     "the output at step 0 differs from the parent's")
    for name, why in report["skipped"].items():
        lines.append(f"  not loaded: {name} ({why})")
    if report["unused"]:
        lines.append(f"  parent tensor(s) unused: {', '.join(report['unused'])}")
    return lines
