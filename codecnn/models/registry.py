"""The one model table: family name → (model class, config class), and building a model
from a plain config dict (as a checkpoint stores it). A leaf of the package, so that the
budget search and the package itself both import it at the top."""

from __future__ import annotations

import dataclasses
from typing import Any

from codecnn.errors import CodecnnError
from codecnn.models.imdn import IMDN, IMDNConfig
from codecnn.models.lop import LOP, LOPConfig
from codecnn.models.mobile import MobileConfig, MobileNet
from codecnn.models.rcan import RCAN, RCANConfig
from codecnn.models.rdn import RDN, RDNConfig
from codecnn.models.resnet import ResNet, ResNetConfig

# The one name → (constructor, config dataclass) table.
MODELS: dict[str, tuple[type, type]] = {
    "rdn": (RDN, RDNConfig),
    "resnet": (ResNet, ResNetConfig),
    "imdn": (IMDN, IMDNConfig),
    "rcan": (RCAN, RCANConfig),
    "mobile": (MobileNet, MobileConfig),
    "lop": (LOP, LOPConfig),
}


def model_from_config(model_name: str, config: dict[str, Any]):
    """Build model `model_name` from a plain config dict (as stored in a checkpoint)."""
    if model_name not in MODELS:
        raise CodecnnError(f"unknown model {model_name!r} (known: {', '.join(MODELS)})")
    cls, cfg_cls = MODELS[model_name]
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    extra = sorted(set(config) - names)
    if extra:
        raise CodecnnError(f"model {model_name!r} has no option(s) {', '.join(extra)}")
    try:
        cfg = cfg_cls(**config)
    except (TypeError, ValueError) as e:
        raise CodecnnError(f"model {model_name!r}: {e}") from None
    return cls(cfg)
