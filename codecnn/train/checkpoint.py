"""Checkpoints: written atomically, holding everything an exact resume needs.

A checkpoint is a dict of plain types and tensors (loadable with weights_only=True):
model_name, model_config, model_state, optimizer_state, scheduler_state, step,
rng (Python/NumPy/torch states as lists/tensors), data (identity), best_metric,
codecnn_version, plus train_config and init_from (the parent checkpoint a run started
from: path, sha256, step, what was loaded; None for a run from scratch).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codecnn import __version__
from codecnn.errors import CodecnnError
from codecnn.io.atomic import atomic_output


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as plain lists/tensors (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    out: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [str(np_name), torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in cuda_states_to_restore(state["cuda"],
                                                        torch.cuda.device_count()):
            torch.cuda.set_rng_state(cuda_state, index)


def cuda_states_to_restore(saved: list, visible: int) -> list[tuple[int, Any]]:
    """(device index, state) pairs for the GPUs visible now.

    A checkpoint holds one CUDA RNG state per GPU visible when it was written; a resume may
    see fewer (another node, CUDA_VISIBLE_DEVICES), where restoring all of them would fail.
    Training draws nothing from the CUDA generators, so the extra states are not needed.
    """
    return list(enumerate(saved[:max(0, visible)]))


def all_finite(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(t).all() for t in state_dict.values() if t.is_floating_point())


def save_checkpoint(path: str | os.PathLike, *, model_name: str, model_config: dict,
                    model: torch.nn.Module, optimizer, scheduler, step: int,
                    data: dict, best_metric: float | None,
                    train_config: dict | None = None,
                    init_from: dict | None = None) -> Path:
    """Write a checkpoint atomically (codecnn.io.atomic: `.NAME.<pid>.tmp`, then renamed).

    Refuses (CodecnnError) to write weights that are not finite: a diverged model never
    replaces a good checkpoint.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not all_finite(state):
        raise CodecnnError(f"{path}: refusing to write non-finite weights at step {step}")
    ckpt = {
        "model_name": model_name,
        "model_config": model_config,
        "model_state": state,
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "step": int(step),
        "rng": rng_state(),
        "data": data,
        "best_metric": best_metric,
        "codecnn_version": __version__,
        "train_config": train_config,
        "init_from": init_from,
    }
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)
    return path
