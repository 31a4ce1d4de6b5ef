"""Shipped models: `codecnn/zoo/NAME.pt` with its card `NAME.json` / `NAME.md` (+ `NAME.png`).

`zoo:NAME` is accepted wherever a checkpoint path is (`eval`, `filter`, `summary`):

    from codecnn.zoo import resolve_model_path, list_zoo
    resolve_model_path("zoo:rdn-vvc-ai")   # → .../codecnn/zoo/rdn-vvc-ai.pt
    resolve_model_path("runs/a/best.pt")   # → runs/a/best.pt (unchanged)

This module only knows paths (models import it); rebuilding a model from its recipe lives in
`codecnn.zoo.recipes`, its card in `codecnn.zoo.card`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent
PREFIX = "zoo:"


def list_zoo(zoo_dir: Path = ZOO_DIR) -> list[str]:
    """Names of the shipped models (those with both weights and a JSON card)."""
    return sorted(p.stem for p in zoo_dir.glob("*.pt") if p.with_suffix(".json").is_file())


def resolve_model_path(ref: str | os.PathLike) -> Path:
    """`zoo:NAME` → the shipped checkpoint; anything else is a path, returned as a Path.

    A zoo name that is not shipped is an error naming the ones that are.
    """
    text = str(ref)
    if not text.startswith(PREFIX):
        return Path(ref)
    name = text[len(PREFIX):]
    path = ZOO_DIR / f"{name}.pt"
    if name not in list_zoo():
        from codecnn.errors import DataError

        raise DataError(f"{text}: no such shipped model (have: "
                        f"{', '.join(list_zoo()) or 'none'}; see `codecnn zoo list`)")
    return path


def read_card(name: str) -> dict[str, Any]:
    """The JSON card of shipped model NAME (with or without the zoo: prefix)."""
    path = resolve_model_path(name if str(name).startswith(PREFIX) else PREFIX + name)
    return json.loads(path.with_suffix(".json").read_text())
