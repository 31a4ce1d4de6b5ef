"""`codecnn export`: a checkpoint → model.onnx (checked against PyTorch), and optionally
model.int8.onnx (onnxruntime static quantisation) and model.int16.npz (the exact integer
model), all written next to each other; then, with `measure`, the gain each one keeps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError


def variant_paths(out: str | os.PathLike) -> dict[str, Path]:
    """model.onnx → {"onnx": model.onnx, "int8": model.int8.onnx, "int16": model.int16.npz}."""
    out = Path(out)
    stem = out.name[:-len(".onnx")] if out.name.endswith(".onnx") else out.name
    return {"onnx": out, "int8": out.with_name(f"{stem}.int8.onnx"),
            "int16": out.with_name(f"{stem}.int16.npz")}


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike,
                 calib: list[str | os.PathLike], int8: bool = False, int16: bool = False,
                 calib_patches: int = 64, headroom: float = 2.0, acc_bits: int = 64,
                 overwrite: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Export, check and quantise. `calib`: shards of real CTUs (training data, not the set
    the gain is measured on) for the ONNX check and the int8/int16 calibration.

    Returns {"model", "files", "check": {...}, "int8": {...}, "int16": {...}}: the check is
    the largest |ONNX − PyTorch| residual (fraction of the peak) on those CTUs.
    """
    import torch

    from codecnn.evaluate.model_io import load_filter
    from codecnn.export.calib import read_patches
    from codecnn.export.to_onnx import (
        check_export,
        compare_with_torch,
        export_onnx,
        normalise,
        onnx_metadata,
    )
    from codecnn.io.atomic import temporary_sibling

    out = Path(out)
    if out.suffix != ".onnx":
        raise DataError(f"{out}: the output of --format onnx must end in .onnx")
    paths = variant_paths(out)
    wanted = ["onnx"] + (["int8"] if int8 else []) + (["int16"] if int16 else [])
    for name in wanted:
        if paths[name].exists() and not overwrite:
            raise DataError(f"{paths[name]}: already exists (use --overwrite to replace it)")
    if not out.parent.is_dir():
        raise DataError(f"{out.parent}: no such directory")
    if Path(str(checkpoint)).suffix in (".onnx", ".npz"):
        raise DataError(f"{checkpoint}: already exported; export starts from a checkpoint")
    model, info = load_filter(checkpoint, "cpu")
    if not calib:
        raise DataError("give --calib SHARDS: real CTUs for the ONNX check and calibration")
    planes = tuple(info["planes"])
    raw, bit_depth = read_patches(calib, planes, info["border"], calib_patches)
    trained = (info.get("data") or {}).get("bit_depth")
    if trained is not None and int(trained) != bit_depth:
        raise DataError(f"{calib[0]}: {bit_depth}-bit shards, but {checkpoint} was trained "
                        f"on {trained}-bit data")
    x = normalise(raw, planes, bit_depth)
    log = _Log(progress)
    log(f"exporting {info['checkpoint']} → {out}")
    # Exported under a temporary name and renamed only once onnxruntime agrees with PyTorch.
    tmp = temporary_sibling(out)
    try:
        export_onnx(model, tmp, onnx_metadata(info))
        check = check_export(tmp, model, x)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log(f"onnxruntime vs PyTorch on {check['patches']} real CTUs: max |diff| "
        f"{check['max_abs_diff']:.2e} of the peak")
    result: dict[str, Any] = {"model": info, "files": {"onnx": str(out)}, "check": check,
                              "bit_depth": bit_depth, "calib": [str(c) for c in calib]}
    if int8:
        from codecnn.export.int8 import quantise_int8

        log(f"int8: calibrating on {len(x)} CTUs → {paths['int8']}")
        settings = quantise_int8(out, paths["int8"], x)
        dev = compare_with_torch(paths["int8"], model, x)
        result["files"]["int8"] = str(paths["int8"])
        result["int8"] = {**settings, "max_abs_diff_vs_float": dev["max_abs_diff"]}
    if int16:
        from codecnn.export.int16 import quantise_rdn, save_program
        from codecnn.export.to_onnx import onnx_metadata as _meta

        log(f"int16: calibrating on {len(raw)} CTUs → {paths['int16']}")
        with torch.inference_mode():
            prog = quantise_rdn(model, raw, bit_depth, headroom=headroom, acc_bits=acc_bits)
        save_program(prog, paths["int16"], {**_meta(info, "int16"), "bit_depth": bit_depth})
        result["files"]["int16"] = str(paths["int16"])
        result["int16"] = {**prog.stats, **_int16_deviation(prog, model, raw, x)}
    return result


def _int16_deviation(prog, model, raw: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """How far the integer residual is from the float one on the calibration CTUs."""
    import torch

    from codecnn.export.int16 import residual_samples, run_exact

    n = min(len(raw), 8)
    with torch.inference_mode():
        want = model(torch.from_numpy(x[:n])).numpy() * prog.peak
    got = run_exact(prog, raw[:n])
    r = residual_samples(prog, got)
    return {"max_abs_diff_samples": float(np.abs(got / 2.0 ** prog.output_shift - want).max()),
            "rounded_residual_differs": float((r != np.rint(want)).mean())}


class _Log:
    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, msg: str) -> None:
        if self.on:  # progress on stderr, as tqdm writes it: library code never prints
            import sys

            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)
