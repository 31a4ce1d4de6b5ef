"""Information multi-distillation network (IMDN) for in-loop filtering of VVC luma.

After Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation
Network" (ACM Multimedia 2019): inside each block, every 3×3 convolution keeps a quarter of
its channels as distilled features and passes only the rest on, so the block refines a
shrinking set of features cheaply; the distilled parts are fused after a contrast-aware
channel attention (CCA), whose gate is computed from each channel's standard deviation plus
mean instead of SE's plain mean (contrast matters more than level for restoration).

    x [B, C_in, 132, 132]
      │ head: `border` unpadded 3×3 convs (as RDN)
      ▼
    s [B, F, 128, 128] ───────────────────────────────────────────────────────┐
      │ IMDB_1 ─▶ IMDB_2 ─▶ … ─▶ IMDB_D                                        │
      │   IMDB(h): c1 = lrelu(conv3(h))  → split d | F−d                       │
      │            c2 = lrelu(conv3(rest)) → split d | F−d   (d = F // 4)      │
      │            c3 = lrelu(conv3(rest)) → split d | F−d                     │
      │            c4 = conv3(rest) → d                                        │
      │            h + 1×1(CCA(cat(d1, d2, d3, c4)))   4d → F                  │
      │ cat(all IMDB outputs) → 1×1 → lrelu → 3×3                              │
      ▼                                                                        │
      + ◀────────────────────────── long skip ─────────────────────────────────┘
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

_SLOPE = 0.05  # IMDN's LeakyReLU slope


@dataclass(frozen=True)
class IMDNConfig(FilterConfig):
    """Args:
        planes, border: as RDNConfig. features: width F (at least 4).
        blocks: IMDBs. reduction: squeeze ratio of the CCA gate (hidden max(1, F // r)).
    """

    planes: tuple[str, ...] = ("rec", "qp")
    features: int = 32
    blocks: int = 3
    reduction: int = 4
    border: int = 2

    def __post_init__(self) -> None:
        self.check("features", "blocks", "reduction")
        if self.features < 4:
            raise ValueError(f"features must be >= 4 (a quarter is distilled), got "
                             f"{self.features}")


class ContrastChannelAttention(ChannelGate):
    """CCA: channels re-weighted by a gate from their standard deviation + mean."""

    def statistic(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        return (x - mean).square().mean(dim=(2, 3), keepdim=True).sqrt() + mean


class IMDB(nn.Module):
    """Information multi-distillation block; [B, F, H, W] → [B, F, H, W]."""

    def __init__(self, features: int, reduction: int) -> None:
        super().__init__()
        self.distilled = d = features // 4
        rest = features - d
        self.c1 = nn.Conv2d(features, features, 3, padding=1)
        self.c2 = nn.Conv2d(rest, features, 3, padding=1)
        self.c3 = nn.Conv2d(rest, features, 3, padding=1)
        self.c4 = nn.Conv2d(rest, d, 3, padding=1)
        self.cca = ContrastChannelAttention(4 * d, reduction)
        self.fuse = nn.Conv2d(4 * d, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.distilled
        kept = []
        h = x
        for conv in (self.c1, self.c2, self.c3):
            out = F.leaky_relu(conv(h), _SLOPE)
            kept.append(out[:, :d])
            h = out[:, d:]
        kept.append(self.c4(h))
        return x + self.fuse(self.cca(torch.cat(kept, dim=1)))


class IMDN(nn.Module):
    """IMDN-style filter; input/output as `codecnn.models.rdn.RDN`."""

    def __init__(self, config: IMDNConfig) -> None:
        super().__init__()
        self.config = config
        f = config.features
        self.head = border_head(config.in_channels, f, config.border)
        self.blocks = nn.ModuleList(IMDB(f, config.reduction) for _ in range(config.blocks))
        self.fuse = nn.Conv2d(config.blocks * f, f, 1)
        self.post = nn.Conv2d(f, f, 3, padding=1)
        self.tail = zero_init(nn.Conv2d(f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = run_head(self.head, x)
        h, outs = s, []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.post(F.leaky_relu(self.fuse(torch.cat(outs, dim=1)), _SLOPE)) + s
        return self.tail(h).float()
