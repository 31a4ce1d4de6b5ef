"""MobileNetV2 inverted residuals for in-loop filtering of VVC luma.

After Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (CVPR 2018):
each block expands a thin feature map t-fold with a 1×1 convolution, filters it spatially
with a depthwise 3×3 (one 3×3 per channel: 9 MACs per sample instead of 9·C), and projects
back with a linear 1×1 (no activation: a ReLU in the thin bottleneck would destroy
information). Batch normalisation is left out, as in the other families (restoration nets
keep the range information it would normalise away).

    x [B, C_in, 132, 132]
      │ head: `border` unpadded 3×3 convs (as RDN)
      ▼
    s [B, F, 128, 128] ───────────────────────────────────────┐
      │ InvertedResidual × blocks:                            │
      │   h + 1×1(relu6(dw3×3(relu6(1×1(h)))))  F → tF → tF → F
      ▼                                                       │
      + ◀──────────────── long skip ──────────────────────────┘
      ▼ tail: 3×3 conv F → 1 (zero-initialised)
    residual [B, 1, 128, 128]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codecnn.models.common import FilterConfig, border_head, run_head, zero_init


@dataclass(frozen=True)
class MobileConfig(FilterConfig):
    """Args:
        planes, border: as RDNConfig. features: bottleneck width F.
        blocks: inverted residual blocks. expansion: t, the expanded width is t·F.
    """

    planes: tuple[str, ...] = ("rec", "qp")
    features: int = 24
    blocks: int = 4
    expansion: int = 4
    border: int = 2

    def __post_init__(self) -> None:
        self.check("features", "blocks", "expansion")


class InvertedResidual(nn.Module):
    """1×1 expand, ReLU6, depthwise 3×3, ReLU6, linear 1×1 project, plus the input."""

    def __init__(self, features: int, expansion: int) -> None:
        super().__init__()
        wide = features * expansion
        self.expand = nn.Conv2d(features, wide, 1)
        self.depthwise = nn.Conv2d(wide, wide, 3, padding=1, groups=wide)
        self.project = nn.Conv2d(wide, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.depthwise(F.relu6(self.expand(x))))
        return x + self.project(h)


class MobileNet(nn.Module):
    """MobileNetV2-style filter; input/output as `codecnn.models.rdn.RDN`."""

    def __init__(self, config: MobileConfig) -> None:
        super().__init__()
        self.config = config
        f = config.features
        self.head = border_head(config.in_channels, f, config.border)
        self.body = nn.Sequential(*(InvertedResidual(f, config.expansion)
                                    for _ in range(config.blocks)))
        self.tail = zero_init(nn.Conv2d(f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = run_head(self.head, x)
        return self.tail(self.body(s) + s).float()
