"""int8 static post-training quantisation with onnxruntime (a maintained implementation).

QDQ format (QuantizeLinear/DequantizeLinear around each operator, which onnxruntime's CPU
provider fuses into integer kernels), int8 weights per output channel, uint8 activations
(the U8S8 combination x86 kernels are fastest with), MinMax calibration on real CTUs. Every
convolution is quantised, the first included: the 10-bit reconstruction then enters the
network as 8 bits, which is part of what int8 costs and what the measurement shows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.export.runtime import read_onnx_meta
from codecnn.export.to_onnx import INPUT, set_metadata


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of inputs, in batches."""

    def __init__(self, x: np.ndarray, batch: int = 8) -> None:
        self._batches = [x[s:s + batch] for s in range(0, len(x), batch)]
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return {INPUT: np.ascontiguousarray(self._batches[self._i - 1], np.float32)}

    def rewind(self) -> None:
        self._i = 0


def conv_nodes(fp32_path: str | os.PathLike) -> list[str]:
    """The names of the model's convolutions in graph order (the first reads the input
    planes, the last writes the residual)."""
    import onnx

    return [n.name for n in onnx.load(str(fp32_path)).graph.node if n.op_type == "Conv"]


def quantise_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  calib_x: np.ndarray, activation_bits: int = 8,
                  keep_float: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the int8 model of an exported fp32 ONNX model, calibrated on `calib_x`
    (normalised inputs [N, C, P, P]); keeps codecnn's metadata, precision "int8". Atomic.

    activation_bits 16 keeps int8 weights with 16-bit activations (W8A16, onnxruntime's
    16-bit QDQ, opset 21); keep_float names convolutions left in float (see conv_nodes).
    These two exist to find where int8 loses the gain (tools/int8_ablation.py); `codecnn
    export --int8` uses the defaults. Returns the settings used."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from codecnn.io.atomic import atomic_output

    meta = read_onnx_meta(fp32_path)
    if activation_bits not in (8, 16):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits}")
    activations = QuantType.QUInt8 if activation_bits == 8 else QuantType.QUInt16
    settings = {"format": "QDQ", "weights": "int8 per channel",
                "activations": f"uint{activation_bits}", "calibration": "MinMax",
                "calibration_patches": int(len(calib_x)), "float_convolutions": list(keep_float)}
    with tempfile.TemporaryDirectory() as tmpdir, atomic_output(out_path) as tmp:
        pre = Path(tmpdir) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(tmp), _Reader(calib_x), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=activations,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=list(keep_float))
        proto = onnx.load(str(tmp))
        set_metadata(proto, {**meta, "precision": "int8", "int8": settings})
        onnx.save(proto, str(tmp))
    return settings
