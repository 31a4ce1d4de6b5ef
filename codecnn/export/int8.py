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


def quantise_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  calib_x: np.ndarray) -> dict[str, Any]:
    """Write the int8 model of an exported fp32 ONNX model, calibrated on `calib_x`
    (normalised inputs [N, C, P, P]); keeps codecnn's metadata, precision "int8". Atomic.
    Returns the settings used."""
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
    settings = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8",
                "calibration": "MinMax", "calibration_patches": int(len(calib_x))}
    with tempfile.TemporaryDirectory() as tmpdir, atomic_output(out_path) as tmp:
        pre = Path(tmpdir) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(tmp), _Reader(calib_x), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(tmp))
        set_metadata(proto, {**meta, "precision": "int8", "int8": settings})
        onnx.save(proto, str(tmp))
    return settings
