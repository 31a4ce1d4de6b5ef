"""Complexity of a filter in the JVET unit: kMAC per output luma pixel, and parameters.

The MACs are counted by codecnn.models.complexity (one place defines what a MAC is).
"""

from __future__ import annotations


def kmac_per_pixel(model, ctu: int = 128) -> float:
    """Convolution/linear MACs per output pixel of one (ctu + 2·border)² tile, in thousands."""
    import torch

    from codecnn.models.complexity import count_macs

    b = int(model.config.border)
    device = next(model.parameters()).device
    x = torch.zeros(1, len(model.config.planes), ctu + 2 * b, ctu + 2 * b, device=device)
    return sum(r["macs"] for r in count_macs(model, x)) / (ctu * ctu) / 1000.0


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
