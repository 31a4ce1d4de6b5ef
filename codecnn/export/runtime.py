"""Deployed models behind the interface the evaluate stage drives: `.config.planes`,
`.config.border`, and forward(x normalised [N, C, H, W] float32) → residual/peak
[N, 1, H-2b, W-2b] float32, as codecnn.models.RDN. So `codecnn filter` and `codecnn eval`
run a `model.onnx` (fp32 or int8, through onnxruntime) or a `model.int16.npz` (the exact
integer model) through the same tiling and scoring as a checkpoint: a user measures exactly
what they deploy.

This module imports nothing from codecnn.evaluate (which imports it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codecnn.errors import DataError

# Keys of the ONNX model's metadata_props written by codecnn.export.onnx.
META_PREFIX = "codecnn."


@dataclass(frozen=True)
class DeployedConfig:
    """What the evaluate stage reads from a model's config."""

    planes: tuple[str, ...]
    border: int


class OnnxFilter(nn.Module):
    """An ONNX model run by onnxruntime on the CPU (input "x", output "residual")."""

    def __init__(self, path: str | os.PathLike, threads: int = 0) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        self.meta = read_onnx_meta(self.path)
        self.config = DeployedConfig(tuple(self.meta["planes"]), int(self.meta["border"]))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # warnings about unused initialisers are not the user's
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            msg = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
            raise DataError(f"{self.path}: onnxruntime cannot load it ({msg})") from None
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        y = self.session.run(None, {self.input_name: arr})[0]
        return torch.from_numpy(y).to(x.device)


class Int16Filter(nn.Module):
    """The int16 fixed-point model (codecnn.export.int16): the normalised input is turned
    back into the raw integer planes, the integer program runs, and the rounded integer
    residual is returned /peak, so the caller's rint(rec + res·peak) is rec + that integer."""

    def __init__(self, prog, meta: dict[str, Any] | None = None, path: Path | None = None
                 ) -> None:
        super().__init__()
        from codecnn.export.int16 import plane_scales

        self.prog = prog
        self.meta = meta or {}
        self.path = path
        self.config = DeployedConfig(tuple(prog.planes), int(prog.border))
        self._scale = torch.tensor(plane_scales(prog.planes, prog.bit_depth)).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from codecnn.export.int16 import residual_samples, run_exact

        raw = torch.round(x.detach().float().cpu() * self._scale).to(torch.int64).numpy()
        dev = "cuda" if x.device.type == "cuda" else "cpu"
        res = residual_samples(self.prog, run_exact(self.prog, raw, device=dev))
        return torch.from_numpy(res.astype(np.float32) / self.prog.peak).to(x.device)


def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    """codecnn's metadata of an ONNX model (planes, border, normalisation, bit depth, ...).

    DataError naming the file when it is missing, not ONNX, or not exported by codecnn.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such ONNX model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        msg = str(e).splitlines()[0][:100] if str(e) else e.__class__.__name__
        raise DataError(f"{path}: not an ONNX model ({msg})") from None
    meta = {}
    for prop in model.metadata_props:
        if prop.key.startswith(META_PREFIX):
            try:
                meta[prop.key[len(META_PREFIX):]] = json.loads(prop.value)
            except ValueError:
                raise DataError(f"{path}: metadata {prop.key} is not JSON") from None
    if "planes" not in meta or "border" not in meta or not model.graph.node:
        raise DataError(f"{path}: not an ONNX model exported by codecnn (no codecnn.planes "
                        "metadata; export it with `codecnn export`)")
    return meta


def load_deployed(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """(model, metadata) for a `.onnx` (onnxruntime) or `.npz` (int16) file."""
    from codecnn.export.int16 import load_program

    path = Path(path)
    if path.suffix == ".onnx":
        m = OnnxFilter(path)
        return m, m.meta
    if path.suffix == ".npz":
        prog, meta = load_program(path)
        return Int16Filter(prog, meta, path), meta
    raise DataError(f"{path}: not a deployed model (expected .onnx or .int16.npz)")


DEPLOYED_SUFFIXES = (".onnx", ".npz")
