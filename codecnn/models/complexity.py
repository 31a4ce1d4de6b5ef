"""Model complexity as codec researchers compare it: parameters, kMAC per pixel, memory.

kMAC/pixel (the JVET complexity unit) is counted from the layers: a forward hook on every
convolution records its output size, and a k×k convolution with C_in/groups inputs per output
sample costs C_in/groups·k·k MACs per output sample. The sum is divided by the output pixels
(the 128×128 CTU for a 132×132 input), so the head's work on the 2-pixel border is charged to
the CTU it serves. Biases, ReLUs, additions, concatenations and (un)pixel-shuffles are not
counted (they are not multiply-accumulates). Grouped and depthwise convolutions (MobileNet's
3×3 per channel) cost C_in/groups·k·k per output sample; the 1×1 convolutions of channel
attention gates (SE, IMDN's CCA) run on one pooled sample per channel and cost next to
nothing per pixel; the pooling, standard deviation and gating products are element-wise and
not counted. This is what torch.utils.flop_counter counts as well (MACs = FLOPs / 2; a test
holds the two equal for every family).

Activation memory is measured on a real forward pass of one patch and scaled linearly by the
batch (every activation is proportional to the batch):
  training  = bytes of the tensors autograd saves for the backward pass (weights excluded);
  inference = peak bytes of intermediate tensors alive at once in a no-grad forward.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

# Peak activation memory needs every op's output storage and its lifetime, which only a
# dispatch mode sees; torch has no public equivalent (torch.profiler reports allocations by
# the allocator, not per tensor on the CPU). MACs are counted with public forward hooks,
# per layer, and a test holds them equal to torch.utils.flop_counter.FlopCounterMode's.
from torch.utils._python_dispatch import TorchDispatchMode

from codecnn.models.common import forward_hooks


def count_macs(model: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
    """MACs per convolution for one forward of `x` ([1, C, H, W]): name, shape, MACs."""
    rows: list[dict[str, Any]] = []

    def count(name: str):
        def hook(m, inp, out):
            if isinstance(m, nn.Linear):
                per_out = m.in_features
            else:
                per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            macs = out[0].numel() * per_out  # per sample of the batch (batch 1)
            rows.append({"layer": name, "out_shape": list(out.shape[1:]), "macs": macs})
        return hook

    convs = [(mod, count(name)) for name, mod in model.named_modules()
             if isinstance(mod, nn.Conv2d | nn.Linear)]
    with forward_hooks(convs), torch.no_grad():
        model(x)
    return rows


def training_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one forward of `x` (unique storages, weights out)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x.requires_grad_(False))
    return sum(seen.values())


class _PeakMemory(TorchDispatchMode):
    """Tracks bytes of op outputs alive at once (storages counted once, freed on last ref)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, list | tuple) else [out]
        for t in outs:
            if not isinstance(t, torch.Tensor):
                continue
            key = t.untyped_storage().data_ptr()
            if key in self.live:
                self.live[key][1] += 1
            else:
                size = t.untyped_storage().nbytes()
                self.live[key] = [size, 1]
                self.current += size
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out


def inference_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of intermediate tensors alive at once during a no-grad forward of `x`
    (the input itself and the weights not counted)."""
    mode = _PeakMemory()
    with torch.no_grad(), mode:
        out = model(x)
    del out
    return mode.peak


def summarize(model: nn.Module, height: int = 132, width: int = 132,
              train_batch: int = 16, infer_batch: int = 1) -> dict[str, Any]:
    """Params, kMAC per output pixel and activation memory (float32) of `model`.

    The input is [1, len(planes), height, width]; output pixels are (height − 2·border) ×
    (width − 2·border), 128×128 for the shards' 132×132 patches.
    """
    cfg = model.config
    out_h, out_w = height - 2 * cfg.border, width - 2 * cfg.border
    even = getattr(cfg, "output_multiple", 1) == 2
    if out_h < 1 or out_w < 1 or (even and (out_h % 2 or out_w % 2)):
        from codecnn.errors import CodecnnError

        need = ", even output needed (2×2 down/up-sampling)" if even else ""
        raise CodecnnError(f"input {height}x{width} does not fit the model "
                           f"(border {cfg.border}{need})")
    was_training = model.training
    model.eval()
    x = torch.rand(1, cfg.in_channels, height, width)
    try:
        rows = count_macs(model, x)
        out_px = out_h * out_w
        macs = sum(r["macs"] for r in rows)
        model.train()
        train_bytes = training_activation_bytes(model, x)
        model.eval()
        infer_bytes = inference_peak_bytes(model, x)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return {
        "params": params,
        "input": [cfg.in_channels, height, width],
        "output": [1, out_h, out_w],
        "macs_per_patch": macs,
        "kmac_per_pixel": macs / out_px / 1000.0,
        "kmac_per_pixel_basis": f"per output pixel of the {out_h}x{out_w} CTU",
        "gmac_per_1080p_frame": macs / out_px * 1920 * 1080 / 1e9,
        "train_batch": train_batch,
        "train_activation_mib": train_bytes * train_batch / 2**20,
        "infer_batch": infer_batch,
        "infer_activation_mib": infer_bytes * infer_batch / 2**20,
        "activation_dtype": "float32",
        "layers": rows,
    }


def format_summary(name: str, s: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    lines = [
        f"| {name} | value |",
        "| --- | ---: |",
        f"| parameters | {s['params']:,} |",
        f"| kMAC/pixel ({s['kmac_per_pixel_basis']}) | {s['kmac_per_pixel']:.1f} |",
        f"| MAC per {s['input'][1]}x{s['input'][2]} patch | {s['macs_per_patch']:,} |",
        f"| GMAC per 1080p frame | {s['gmac_per_1080p_frame']:.1f} |",
        f"| training activations, batch {s['train_batch']} (fp32) | "
        f"{s['train_activation_mib']:.1f} MiB |",
        f"| inference peak activations, batch {s['infer_batch']} (fp32) | "
        f"{s['infer_activation_mib']:.1f} MiB |",
    ]
    return "\n".join(lines)
