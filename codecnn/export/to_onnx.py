"""PyTorch → ONNX, with what a deployer needs recorded in the file, and the check that
onnxruntime computes what PyTorch does on real CTUs.

The graph: input "x" float32 [N, C, H, W] (C = len(planes), normalised as in training:
rec/peak, qp/63, depth/8), output "residual" float32 [N, 1, H-2b, W-2b] = (orig − rec)/peak
for the centre of x; N, H and W are dynamic (with down/up-sampling H-2b and W-2b must be
even). The metadata (`codecnn.*` keys, JSON values) names the planes, the normalisation, the
border, the training bit depth and the source checkpoint.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError
from codecnn.export.runtime import META_PREFIX, OnnxFilter

OPSET = 17
INPUT, OUTPUT = "x", "residual"
# The largest |ONNX − PyTorch| residual accepted, as a fraction of the peak sample value.
TOLERANCE = 1e-5


def onnx_metadata(info: dict[str, Any], precision: str = "fp32") -> dict[str, Any]:
    """The `codecnn.*` metadata of an exported model, from load_filter's info dict."""
    from codecnn import __version__

    bit_depth = (info.get("data") or {}).get("bit_depth")
    norm = {p: ("peak = 2^bit_depth - 1" if p == "rec" else s)
            for p, s in zip(info["planes"], _scales(info["planes"]), strict=True)}
    return {
        "planes": list(info["planes"]),
        "normalisation": norm,
        "input": f"{INPUT}: float32 [N, {len(info['planes'])}, H, W], each plane divided by "
                 "its normalisation",
        "output": f"{OUTPUT}: float32 [N, 1, H-{2 * info['border']}, W-{2 * info['border']}]"
                  ", (orig - rec)/peak of the centre; filtered = clip(round(rec + "
                  "residual*peak))",
        "border": int(info["border"]),
        "bit_depth": bit_depth,
        "data": info.get("data"),
        "model_name": info.get("name"),
        "model_config": info.get("config"),
        "params": info.get("params"),
        "kmac_per_pixel": info.get("kmac_per_pixel"),
        "step": info.get("step"),
        "source": info.get("checkpoint"),
        "precision": precision,
        "codecnn_version": __version__,
    }


def _scales(planes: list[str]) -> list[float | None]:
    from codecnn.io.shard import SIDE_SCALE

    return [None if p == "rec" else SIDE_SCALE[p] for p in planes]


def set_metadata(model_proto, meta: dict[str, Any]) -> None:
    """Replace the `codecnn.*` metadata_props of an onnx.ModelProto with `meta`."""
    keep = [p for p in model_proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(keep)
    for key, value in meta.items():
        prop = model_proto.metadata_props.add()
        prop.key, prop.value = META_PREFIX + key, json.dumps(value)


def export_onnx(model, path: str | os.PathLike, meta: dict[str, Any],
                opset: int = OPSET) -> Path:
    """Write `model` (an RDN in eval mode) as ONNX with dynamic N, H, W and `meta`. Atomic."""
    import onnx
    import torch

    from codecnn.io.atomic import atomic_output

    cfg = model.config
    side = 128 + 2 * int(cfg.border)
    x = torch.zeros(1, len(cfg.planes), side, side)
    path = Path(path)
    with atomic_output(path) as tmp:
        # The TorchScript exporter: the torch.export-based one needs onnxscript, and this
        # fully convolutional graph has no control flow it would handle better.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model.cpu().eval(), (x,), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "n", 2: "h", 3: "w"},
                              OUTPUT: {0: "n", 2: "h_out", 3: "w_out"}})
        proto = onnx.load(str(tmp))
        set_metadata(proto, meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return path


def normalise(raw: np.ndarray, planes: tuple[str, ...] | list[str], bit_depth: int) -> np.ndarray:
    """Raw integer planes [N, C, H, W] → the float32 network input (training normalisation)."""
    from codecnn.export.int16 import plane_scales

    scale = np.array(plane_scales(tuple(planes), bit_depth), np.float32).reshape(1, -1, 1, 1)
    return (raw.astype(np.float32) / scale).astype(np.float32)


def compare_with_torch(onnx_path: str | os.PathLike, model, x: np.ndarray,
                       batch: int = 8) -> dict[str, float]:
    """Largest |ONNX − PyTorch| residual on inputs x (normalised [N, C, H, W]), as a fraction
    of the peak (the residual's unit) — also the check of an int8 model's deviation."""
    import torch

    ort_model = OnnxFilter(onnx_path)
    worst, ref_peak = 0.0, 0.0
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            xt = torch.from_numpy(x[s:s + batch])
            want = model(xt).numpy()
            got = ort_model(xt).numpy()
            worst = max(worst, float(np.abs(got - want).max()))
            ref_peak = max(ref_peak, float(np.abs(want).max()))
    return {"max_abs_diff": worst, "max_abs_residual": ref_peak, "patches": int(len(x))}


def check_export(onnx_path: str | os.PathLike, model, x: np.ndarray) -> dict[str, float]:
    """compare_with_torch, raising DataError when the difference exceeds TOLERANCE."""
    res = compare_with_torch(onnx_path, model, x)
    if res["max_abs_diff"] > TOLERANCE:
        raise DataError(f"{onnx_path}: onnxruntime differs from PyTorch by "
                        f"{res['max_abs_diff']:.2e} of the peak on {res['patches']} real "
                        f"CTUs (tolerance {TOLERANCE:.0e})")
    return res
