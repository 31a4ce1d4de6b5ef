"""EDSR-style residual network for in-loop filtering of VVC luma.

After Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution"
(CVPR workshops 2018): residual blocks without batch normalisation (it normalises away the
range information a restoration network needs, and costs memory), each block's branch scaled
by a small constant before it is added (residual scaling, which EDSR found keeps wide stacks
stable), a long skip around the body.

    x [B, C_in, 132, 132]      rec/peak, qp/63, depth/8
      │ head: `border` unpadded 3×3 convs (as RDN)
      ▼
    s [B, F, 128, 128] ─────────────────────────────────────┐
      │ ResBlock × blocks:  h + res_scale · conv3(relu(conv3(h)))
      │ conv3 F → F                                         │
      ▼                                                     │
      + ◀──────────────── long skip ────────────────────────┘
      ▼ tail: 3×3 conv F → 1 (zero-initialised: identity filter at step 0)
    residual [B, 1, 128, 128]  (orig − rec)/peak
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codecnn.models.common import FilterConfig, border_head, run_head, zero_init


@dataclass(frozen=True)
class ResNetConfig(FilterConfig):
    """Args:
        planes: input planes ("rec" first among rec/qp/depth); border: context samples.
        features: width F of every block; blocks: residual blocks.
        res_scale: factor on each block's branch before the addition (EDSR: 0.1).
    """

    planes: tuple[str, ...] = ("rec", "qp")
    features: int = 32
    blocks: int = 4
    res_scale: float = 0.1
    border: int = 2

    def __post_init__(self) -> None:
        self.check("features", "blocks")
        if not self.res_scale > 0:
            raise ValueError(f"res_scale must be > 0, got {self.res_scale}")


class ResBlock(nn.Module):
    """conv3-ReLU-conv3, scaled, plus the input; [B, F, H, W] → [B, F, H, W]."""

    def __init__(self, features: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class ResNet(nn.Module):
    """EDSR-style filter; input/output as `codecnn.models.rdn.RDN`."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        f = config.features
        self.head = border_head(config.in_channels, f, config.border)
        self.body = nn.Sequential(*(ResBlock(f, config.res_scale) for _ in range(config.blocks)),
                                  nn.Conv2d(f, f, 3, padding=1))
        self.tail = zero_init(nn.Conv2d(f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = run_head(self.head, x)
        return self.tail(self.body(s) + s).float()
