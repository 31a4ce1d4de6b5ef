"""Residual Dense Network (RDN) for in-loop filtering of VVC luma.

After Zhang et al., "Residual Dense Network for Image Super-Resolution" (CVPR 2018), adapted
as in the research notes this project grew from:

    x [B, C_in, H, W]          rec/peak, qp/63, depth/8 (C_in = len(planes)), H = 128 + 2·border
      │ head: `border` unpadded 3×3 convs          (132 → 130 → 128: two 3×3 beat one 5×5)
      ▼
    s [B, F, H-2b, W-2b]  ──(optional UnPixelShuffle(2) + 1×1: 4F → F, half resolution)──┐
      │                                                                                  │
      ├─▶ RDB_1 ─▶ RDB_2 ─▶ … ─▶ RDB_D      (each: n dense 3×3 conv+ReLU of growth g,     │
      │     └────────┴─────────────┘          1×1 local feature fusion, local residual)  │
      │        concat → 1×1 → 3×3            (global feature fusion)                     │
      ▼                                                                                  │
      + ◀──────────── global residual (without it there was no gain) ────────────────────┘
      │ (optional 3×3 F → 4F + PixelShuffle(2) back to full resolution)
      ▼ tail: 3×3 conv F → 1
    residual [B, 1, H-2b, W-2b]     (orig − rec)/peak; the caller adds it to rec's centre

Inside the body convolutions are zero-padded ("same"), so the network is fully
convolutional: any H, W works (with down/up-sampling, H-2b and W-2b must be even).
The tail starts at zero, so a fresh network is the identity filter (residual 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codecnn.models.common import KNOWN_PLANES, FilterConfig, border_head, run_head, zero_init

__all__ = ["KNOWN_PLANES", "RDB", "RDN", "RDNConfig"]


@dataclass(frozen=True)
class RDNConfig(FilterConfig):
    """Hyperparameters of an RDN; stored in every checkpoint so a resume rebuilds it exactly.

    Args:
        planes: input planes in the order the Dataset stacks them; must contain "rec".
        features: feature maps F of the shallow features and of every RDB's output.
        blocks: number D of residual dense blocks.
        layers: dense layers n per RDB (cost grows as O(n²) in n).
        growth: growth rate g (channels each dense layer adds).
        border: context samples around the CTU in the input; `border` unpadded 3×3 convs
            remove it (2 for the 132×132 patches of the shards).
        updown: UnPixelShuffle(2) after the head and PixelShuffle(2) before the tail
            (body at half resolution with the same F: about 4× fewer MACs in the RDBs).
    """

    planes: tuple[str, ...] = ("rec", "qp")
    features: int = 32
    blocks: int = 3
    layers: int = 6
    growth: int = 16
    border: int = 2
    updown: bool = False

    def __post_init__(self) -> None:
        self.check("features", "blocks", "layers", "growth")

    @property
    def output_multiple(self) -> int:
        """The output's sides must be multiples of this (2 with down/up-sampling)."""
        return 2 if self.updown else 1


class RDB(nn.Module):
    """Residual dense block: n densely connected 3×3 conv+ReLU layers, 1×1 fusion, residual.

    Layer i sees the block input and all earlier layers' outputs (F + i·g channels) and adds
    g channels; the 1×1 local feature fusion maps F + n·g back to F; the block input is added
    (local residual learning). Shape-preserving: [B, F, H, W] → [B, F, H, W].
    """

    def __init__(self, features: int, layers: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth, 3, padding=1) for i in range(layers)
        )
        self.fuse = nn.Conv2d(features + layers * growth, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(F.relu(conv(torch.cat(feats, dim=1))))
        return x + self.fuse(torch.cat(feats, dim=1))


class RDN(nn.Module):
    """Residual Dense Network predicting the luma coding error of a decoded CTU.

    Input  x: float [B, len(planes), H, W], normalised as in `codecnn.datasets.ShardDataset`
              (rec/peak in [0, 1], qp/63, depth/8), H = W = 132 for the shards.
    Output:   float [B, 1, H - 2·border, W - 2·border], the residual (orig − rec)/peak; the
              caller adds it to rec[..., b:-b, b:-b].
    """

    def __init__(self, config: RDNConfig) -> None:
        super().__init__()
        self.config = config
        c, f = config.in_channels, config.features
        # Unpadded head: the border is real context from the neighbouring CTUs, consumed here.
        self.head = border_head(c, f, config.border)
        self.down = nn.Conv2d(4 * f, f, 1) if config.updown else None
        self.blocks = nn.ModuleList(
            RDB(f, config.layers, config.growth) for _ in range(config.blocks)
        )
        self.gff = nn.Sequential(
            nn.Conv2d(config.blocks * f, f, 1), nn.Conv2d(f, f, 3, padding=1)
        )
        self.up = nn.Conv2d(f, 4 * f, 3, padding=1) if config.updown else None
        self.tail = nn.Conv2d(f, 1, 3, padding=1)
        # The filter starts as the identity (residual 0): an untrained or barely trained
        # network does not damage the picture, and early steps learn a correction of rec
        # instead of first unlearning a random one.
        zero_init(self.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = run_head(self.head, x)  # in fp32 even under bf16 autocast (see run_head)
        if self.down is not None:
            s = self.down(F.pixel_unshuffle(s, 2))
        h = s
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.gff(torch.cat(outs, dim=1)) + s  # global residual connection
        if self.up is not None:
            h = F.pixel_shuffle(self.up(h), 2)
        return self.tail(h).float()
