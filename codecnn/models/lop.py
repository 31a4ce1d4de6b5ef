"""A low-operation-point filter in the spirit of JVET NNVC's LOP in-loop filter.

NNVC (the JVET neural-network video coding exploration software) carries, beside its large
filters of several hundred kMAC/px, a low-operation-point filter of under about 20 kMAC/px.
Its levers are the ones used here: the picture is folded 2×2 into channels (UnPixelShuffle),
so every layer runs on a quarter of the samples, and the body is a few thin layers. This is
not NNVC's network (its exact layers are not reproduced), only its operating point.

    x [B, C_in, 132, 132]
      │ head: `border` unpadded 3×3 convs, thin (head_features H), as RDN's
      ▼
    [B, H, 128, 128] ─ UnPixelShuffle(2) ─▶ [B, 4H, 64, 64] ─ 1×1 → F ─▶ s ─────┐
      │ (3×3 conv F → F + ReLU) × layers, at half resolution                     │
      ▼                                                                          │
      + ◀─────────────────────────── skip ──────────────────────────────────────┘
      ▼ tail: 3×3 conv F → 4 (zero-initialised), PixelShuffle(2)
    residual [B, 1, 128, 128]       (output sides must be even)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codecnn.models.common import FilterConfig, border_head, run_head, zero_init


@dataclass(frozen=True)
class LOPConfig(FilterConfig):
    """Args:
        planes, border: as RDNConfig. head_features: width H of the full-resolution head.
        features: width F of the half-resolution body (fixed by the operating point; the
            budget search changes `layers` first). layers: 3×3 body layers.
    """

    planes: tuple[str, ...] = ("rec", "qp")
    head_features: int = 8
    features: int = 32
    layers: int = 7
    border: int = 2

    def __post_init__(self) -> None:
        self.check("head_features", "features", "layers")

    output_multiple = 2


class LOP(nn.Module):
    """Low-operation-point filter; input/output as `codecnn.models.rdn.RDN`."""

    def __init__(self, config: LOPConfig) -> None:
        super().__init__()
        self.config = config
        h, f = config.head_features, config.features
        self.head = border_head(config.in_channels, h, config.border)
        self.fold = nn.Conv2d(4 * h, f, 1)
        self.body = nn.ModuleList(nn.Conv2d(f, f, 3, padding=1) for _ in range(config.layers))
        self.tail = zero_init(nn.Conv2d(f, 4, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fold(F.pixel_unshuffle(run_head(self.head, x), 2))
        h = s
        for conv in self.body:
            h = F.relu(conv(h))
        return F.pixel_shuffle(self.tail(h + s), 2).float()
