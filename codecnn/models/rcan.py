"""Residual blocks with squeeze-and-excitation channel attention (RCAN) for VVC luma.

After Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks" (ECCV 2018), whose channel attention is Hu et al.'s squeeze-and-excitation
(CVPR 2018): each residual block re-weights its channels by a gate computed from their
global average, so the network can turn features up or down per picture content.

    x [B, C_in, 132, 132]
      │ head: `border` unpadded 3×3 convs (as RDN)
      ▼
    s [B, F, 128, 128] ──────────────────────────────────────────────┐
      │ ResidualGroup × groups:                                      │
      │   g ─▶ RCAB × blocks ─▶ conv3 ─▶ + g                          │
      │   RCAB(h) = h + SE(conv3(relu(conv3(h))))                    │
      │   SE(u)   = u · sigmoid(1×1(relu(1×1(avgpool(u)))))  F → F/r → F
      │ conv3 F → F                                                  │
      ▼                                                              │
      + ◀──────────────────── long skip ─────────────────────────────┘
      ▼ tail: 3×3 conv F → 1 (zero-initialised)
    residual [B, 1, 128, 128]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codecnn.models.common import (
    ChannelGate,
    FilterConfig,
    border_head,
    run_head,
    zero_init,
)


@dataclass(frozen=True)
class RCANConfig(FilterConfig):
    """Args:
        planes, border: as RDNConfig. features: width F.
        groups: residual groups; blocks: RCABs per group.
        reduction: squeeze ratio r of the channel attention (hidden width max(1, F // r)).
    """

    planes: tuple[str, ...] = ("rec", "qp")
    features: int = 32
    groups: int = 2
    blocks: int = 2
    reduction: int = 8
    border: int = 2

    def __post_init__(self) -> None:
        self.check("features", "groups", "blocks", "reduction")


class SqueezeExcite(ChannelGate):
    """Channel gate from the global average: [B, F, H, W] → same, channels re-weighted."""


class RCAB(nn.Module):
    """Residual channel attention block: h + SE(conv3(relu(conv3(h))))."""

    def __init__(self, features: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.se = SqueezeExcite(features, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.conv2(F.relu(self.conv1(x))))


class ResidualGroup(nn.Module):
    """RCABs, a 3×3 conv, and a skip around them (RCAN's residual in residual)."""

    def __init__(self, features: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(RCAB(features, reduction) for _ in range(blocks)),
                                  nn.Conv2d(features, features, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(nn.Module):
    """RCAN-style filter; input/output as `codecnn.models.rdn.RDN`."""

    def __init__(self, config: RCANConfig) -> None:
        super().__init__()
        self.config = config
        f = config.features
        self.head = border_head(config.in_channels, f, config.border)
        self.body = nn.Sequential(
            *(ResidualGroup(f, config.blocks, config.reduction) for _ in range(config.groups)),
            nn.Conv2d(f, f, 3, padding=1))
        self.tail = zero_init(nn.Conv2d(f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = run_head(self.head, x)
        return self.tail(self.body(s) + s).float()
