"""Loading a trained filter for evaluation (through codecnn.models' checkpoint contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codecnn.errors import DataError


def load_filter(path: str | Path, device: str = "cpu"):
    """(model, info) from a checkpoint; info has name, config, step, data, params, kmac_per_pixel.

    A `.onnx` file (fp32 or int8, run by onnxruntime) or `.npz` int16 model written by
    `codecnn export` is loaded as what it is, so eval/filter score exactly what is deployed.
    DataError naming the file when it is missing or not a codecnn checkpoint.
    """
    from codecnn.evaluate.complexity import kmac_per_pixel, num_params
    from codecnn.models import load_model
    from codecnn.zoo import resolve_model_path

    path = resolve_model_path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    if path.suffix in (".onnx", ".npz"):
        return _load_deployed(path, device)
    model, meta = load_model(path, map_location="cpu")
    model.eval()
    info: dict[str, Any] = {
        "checkpoint": str(path.resolve()),
        "name": meta.get("model_name", meta.get("name")),
        "config": json_plain(meta.get("model_config", meta.get("config", {}))),
        "step": meta.get("step"),
        "data": json_plain(meta.get("data")),
        "planes": list(model.config.planes),
        "border": int(model.config.border),
        "params": num_params(model),
        "kmac_per_pixel": round(kmac_per_pixel(model), 3),
    }
    return model.to(device), info


def _load_deployed(path: Path, device: str):
    """(model, info) for an exported file; info as for a checkpoint, plus "precision"."""
    from codecnn.export.runtime import load_deployed

    model, meta = load_deployed(path)
    data = dict(meta.get("data") or {})
    if meta.get("bit_depth") is not None:  # an int16 model's peak is part of its integers
        data["bit_depth"] = meta["bit_depth"]
    info: dict[str, Any] = {
        "checkpoint": str(path.resolve()),
        "name": meta.get("model_name"),
        "config": meta.get("model_config"),
        "step": meta.get("step"),
        "data": data or None,
        "planes": list(model.config.planes),
        "border": int(model.config.border),
        "params": meta.get("params"),
        "kmac_per_pixel": meta.get("kmac_per_pixel"),
        "precision": meta.get("precision"),
        "source": meta.get("source"),
    }
    return model.to(device), info


def check_bit_depth(info: dict[str, Any], bit_depth: int, where: str) -> None:
    """Refuse data of another bit depth than the model was trained on.

    The network sees samples normalised by the peak of their own bit depth, so a 10-bit model
    would run on 8-bit data without any error and report meaningless numbers.
    """
    trained = (info.get("data") or {}).get("bit_depth")
    if trained is not None and int(trained) != int(bit_depth):
        raise DataError(f"{where}: {bit_depth}-bit data, but the model {info['checkpoint']} "
                        f"was trained on {trained}-bit data")


def json_plain(value: Any) -> Any:
    """JSON-friendly copy of checkpoint metadata (tuples → lists, other objects → str)."""
    if isinstance(value, dict):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
