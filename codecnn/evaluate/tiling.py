"""Whole-picture filtering, CTU by CTU, as an in-loop filter applies a CTU-based network.

The luma picture [H, W] is padded by the model's border b on every side by replicating the
picture edge (and, at the right/bottom, up to a whole number of CTUs), then cut into
(C + 2b)×(C + 2b) tiles on the C×C CTU grid: each tile holds its CTU and b samples of its
neighbours, exactly as the training patches do. Tiles go through the model in batches; each
CTU's valid part (less than C×C for CTUs cut by the picture edge) is written back, so every
pixel of the picture is covered once. For a model whose receptive field does not reach past
its border (unpadded convolutions only) the result equals one whole-picture pass.

Model inputs are normalised as in the Dataset: rec/peak, qp/63, depth/8; the model returns
the residual [N, 1, C, C] normalised by peak; the output is clip(round(rec + res·peak)).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codecnn.datasets.shards import DEPTH_SCALE, QP_SCALE
from codecnn.errors import DataError

# The normalisation the network was trained with (codecnn.datasets): one definition, so
# filtering can never scale side information differently from training.
PLANE_SCALE = {"qp": QP_SCALE, "depth": DEPTH_SCALE}  # rec: the peak of its bit depth
DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class CtuGrid:
    """The CTU grid of a picture: size C, and (x, y, valid_w, valid_h) per CTU, raster order."""

    width: int
    height: int
    ctu: int

    @property
    def cols(self) -> int:
        return -(-self.width // self.ctu)

    @property
    def rows(self) -> int:
        return -(-self.height // self.ctu)

    def __len__(self) -> int:
        return self.rows * self.cols

    def __iter__(self):
        c = self.ctu
        for r in range(self.rows):
            for k in range(self.cols):
                x, y = k * c, r * c
                yield x, y, min(c, self.width - x), min(c, self.height - y)


def side_planes(planes: Sequence[str], shape: tuple[int, int], qp: int | np.ndarray | None,
                depth: np.ndarray | None, where: str = "input") -> dict[str, np.ndarray]:
    """The side-info planes a model asks for, each [H, W]; DataError naming what is missing."""
    out: dict[str, np.ndarray] = {}
    for name in planes:
        if name == "rec":
            continue
        value = {"qp": qp, "depth": depth}.get(name)
        if name not in PLANE_SCALE:
            raise DataError(f"{where}: model asks for unknown input plane {name!r}")
        if value is None:
            raise DataError(f"{where}: model uses the {name} plane but the data has no {name}")
        arr = np.asarray(value)
        if arr.ndim == 0:
            arr = np.full(shape, int(arr), np.uint8)
        if arr.shape != shape:
            raise DataError(f"{where}: {name} map is {arr.shape[1]}x{arr.shape[0]}, "
                            f"picture is {shape[1]}x{shape[0]}")
        out[name] = arr
    return out


class TiledFilter:
    """Applies a model to whole luma pictures CTU by CTU.

    Args:
        model: nn.Module with `.config.planes` and `.config.border` (see codecnn.models).
        bit_depth: of the pictures (peak = (1 << bit_depth) - 1).
        ctu: CTU size C (128 as in VVC and in the shards).
        device: "cpu", "cuda", ... ; batch: CTUs per forward pass.
        dtype: "fp32", or "bf16"/"fp16" autocast (fp16 only on CUDA).
        channels_last: use NHWC memory format (faster convolutions on most back ends).
        compile: torch.compile the model ("reduce-overhead" on CUDA adds CUDA graphs).
        cast: with bf16/fp16, cast the weights and the tiles to that type instead of
            autocast (half-precision I/O end to end; the residual is read back as float32).
    """

    def __init__(self, model, bit_depth: int, ctu: int = 128, device: str = "cpu",
                 batch: int = 16, dtype: str = "fp32", channels_last: bool = False,
                 compile: bool = False, cast: bool = False) -> None:
        import torch

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.planes = tuple(model.config.planes)
        self.border = int(model.config.border)
        self.bit_depth = bit_depth
        self.peak = (1 << bit_depth) - 1
        self.ctu = ctu
        self.device = torch.device(device)
        self.batch = max(1, batch)
        self.dtype = dtype
        self.channels_last = channels_last
        self.cast = cast and dtype != "fp32"
        if self.cast or channels_last:  # Module.to works in place: leave the caller's model be
            model = copy.deepcopy(model)
        self.model = model.to(self.device).eval()
        self._in_dtype = torch.float32
        if self.cast:
            self._in_dtype = torch.bfloat16 if dtype == "bf16" else torch.float16
            self.model = self.model.to(self._in_dtype)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._forward = self.model
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._forward = torch.compile(self.model, mode=mode, dynamic=False)
        scale = [float(self.peak) if p == "rec" else PLANE_SCALE.get(p, 1.0) for p in self.planes]
        self._scale = torch.tensor(scale, device=self.device).view(1, -1, 1, 1)

    def _autocast(self):
        import torch

        if self.dtype == "fp32" or self.cast:
            return contextlib.nullcontext()
        dt = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dt)

    def residual(self, stack: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Residual of the model over a whole picture.

        stack: integer samples [K, H, W], one plane per model input in `self.planes` order
        (rec at the picture's bit depth, qp 0..63, depth 0..8), not yet normalised.
        out: optional float32 [H, W] buffer to write into (every element is written).
        Returns the residual [H, W] float32 in units of samples (already × peak).
        """
        import torch
        import torch.nn.functional as F

        k, h, w = stack.shape
        grid = CtuGrid(w, h, self.ctu)
        b, c = self.border, self.ctu
        if out is None:
            out = np.empty((h, w), np.float32)
        # Integers travel to the device as int16 (exact for ≤ 15-bit samples, half the bytes
        # of float32) and are normalised there.
        x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.int16)).to(self.device)
        x = x.unsqueeze(0).float()
        pad = (b, b + grid.cols * c - w, b, b + grid.rows * c - h)
        x = F.pad(x, pad, mode="replicate") / self._scale
        p = c + 2 * b
        tiles = x.unfold(2, p, c).unfold(3, p, c)  # [1, K, rows, cols, P, P]
        tiles = tiles[0].permute(1, 2, 0, 3, 4).reshape(-1, k, p, p)
        n = tiles.shape[0]
        res = torch.empty((n, c, c), dtype=torch.float32, device=self.device)
        with torch.inference_mode(), self._autocast():
            for start in range(0, n, self.batch):
                batch = tiles[start : start + self.batch].to(self._in_dtype).contiguous()
                if self.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                r = self._forward(batch)
                if r.shape[-2:] != (c, c):
                    raise DataError(f"model returned {tuple(r.shape)} for {p}x{p} tiles; "
                                    f"expected a {c}x{c} residual (border {b})")
                res[start : start + len(batch)] = r[:, 0].float()
        # CTU grid → picture on the device, then one transfer; cut CTUs keep their valid part.
        pic = res.view(grid.rows, grid.cols, c, c).permute(0, 2, 1, 3)
        pic = (pic.reshape(grid.rows * c, grid.cols * c)[:h, :w] * self.peak).cpu().numpy()
        out[...] = pic
        return out

    def stack(self, rec: np.ndarray, qp: int | np.ndarray | None = None,
              depth: np.ndarray | None = None, where: str = "input") -> np.ndarray:
        """The model's input planes [K, H, W] (integers) for one picture."""
        side = side_planes(self.planes, rec.shape, qp, depth, where)
        return np.stack([rec if p == "rec" else side[p] for p in self.planes]).astype(np.int16)

    def filter(self, rec: np.ndarray, qp: int | np.ndarray | None = None,
               depth: np.ndarray | None = None, where: str = "input") -> np.ndarray:
        """Filtered luma [H, W], same dtype as `rec`: clip(round(rec + residual), 0, peak).

        rec: decoded luma [H, W] (uint8/uint16 at `bit_depth`); qp: the slice QP or a per-pixel
        QP map [H, W]; depth: CU depth map [H, W] (only if the model uses it).
        """
        res = self.residual(self.stack(rec, qp, depth, where))
        y = np.rint(rec.astype(np.float32) + res)
        return np.clip(y, 0, self.peak).astype(rec.dtype)
