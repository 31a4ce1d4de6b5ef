"""Complexity of a filter in the JVET unit: kMAC per output luma pixel, and parameters."""

from __future__ import annotations


def kmac_per_pixel(model, ctu: int = 128) -> float:
    """Multiply-accumulates of convolutions and linear layers per output pixel, in thousands.

    Counted with forward hooks on one (ctu + 2·border)² tile of zeros (on the model's device),
    divided by the ctu² pixels it produces; element-wise work (activations, additions) is
    not counted, as in JVET's NNVC complexity tables.
    """
    import torch

    b = int(model.config.border)
    k = len(model.config.planes)
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            total += out.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    try:
        device = next(model.parameters()).device
        with torch.inference_mode():
            model(torch.zeros(1, k, ctu + 2 * b, ctu + 2 * b, device=device))
    finally:
        for h in handles:
            h.remove()
    return total / (ctu * ctu) / 1000.0


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
