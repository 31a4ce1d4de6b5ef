"""What every in-loop filter family shares: the input planes, the unpadded border head and
the zero tail, so that families differ only in their body and compare on the same contract.

    x [B, len(planes), H, W] ─▶ head: `border` unpadded 3×3 convs (132 → 130 → 128) ─▶ body
    body ─▶ tail (zero-initialised) ─▶ residual [B, 1, H-2b, W-2b]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from codecnn.io.shard import PLANES as KNOWN_PLANES  # the input planes the shards define


def check_planes(planes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The planes as a tuple; ValueError unless each is known, once, and "rec" is there."""
    planes = tuple(planes)
    if "rec" not in planes:
        raise ValueError(f"planes {planes} must contain 'rec'")
    unknown = [p for p in planes if p not in KNOWN_PLANES]
    if unknown or len(set(planes)) != len(planes):
        raise ValueError(f"planes {planes}: each must be one of {KNOWN_PLANES}, once")
    return planes


def check_positive(config, *names: str) -> None:
    """ValueError naming the first of `names` that is below 1."""
    for name in names:
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")


class FilterConfig:
    """What every family's config dataclass shares (a mixin, no fields of its own): the input
    planes, the unpadded border, their checks, and the output side multiple."""

    output_multiple = 1  # the output's sides must be multiples of this

    @property
    def in_channels(self) -> int:
        return len(self.planes)

    def check(self, *positive: str) -> None:
        """Normalise the planes; ValueError for a bad plane, a field of `positive` below 1 or
        a negative border. Call from __post_init__."""
        object.__setattr__(self, "planes", check_planes(self.planes))
        check_positive(self, *positive)
        if self.border < 0:
            raise ValueError(f"border must be >= 0, got {self.border}")


def border_head(in_channels: int, features: int, border: int) -> nn.Sequential:
    """`border` unpadded 3×3 convolutions (a padded one when border is 0): the border is
    real context from the neighbouring CTUs, consumed here (two 3×3 beat one 5×5)."""
    head: list[nn.Module] = [nn.Conv2d(in_channels if i == 0 else features, features, 3)
                             for i in range(border)]
    if not head:
        head.append(nn.Conv2d(in_channels, features, 3, padding=1))
    return nn.Sequential(*head)


def run_head(head: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The head in fp32 even under bf16 autocast.

    bf16 keeps 8 significant bits, so a 10-bit sample of 512..1023 would move in steps of 4
    code values, as large as the coding error at low QPs. After the first convolutions the
    features carry the detail and the body can run in bf16. (A model whose weights were cast
    to bf16 runs its head in bf16: that caller chose the precision. On the meta device, where
    the budget search counts MACs without computing, there is no autocast to leave.)
    """
    ctx = (nullcontext() if x.device.type == "meta"
           else torch.autocast(x.device.type, enabled=False))
    with ctx:
        return head(x.to(head[0].weight.dtype))


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero a tail convolution: a fresh network is the identity filter (residual 0), so an
    untrained or barely trained network does not damage the picture and early steps learn a
    correction of rec instead of first unlearning a random one."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ChannelGate(nn.Module):
    """Channel attention: a per-channel statistic → 1×1 down → ReLU → 1×1 up → sigmoid, the
    channels re-weighted by it. SE (RCAN) gates by the mean; IMDN's CCA by std + mean."""

    def __init__(self, features: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, features // reduction)
        self.down = nn.Conv2d(features, hidden, 1)
        self.up = nn.Conv2d(hidden, features, 1)

    def statistic(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.up(torch.relu(self.down(self.statistic(x)))))


@contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Callable]]) -> Iterator[None]:
    """Forward hooks (module, fn(module, inputs, output)) registered for the block only;
    removed on the way out, also when the forward pass raises."""
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
