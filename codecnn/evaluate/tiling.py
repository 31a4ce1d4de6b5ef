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
from collections.abc import Iterable, Iterator, Sequence
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
        channels_last: use NHWC memory format (faster convolutions on most back ends);
            None: on CUDA only.
        compile: torch.compile the model ("reduce-overhead" on CUDA adds CUDA graphs).
        cast: with bf16/fp16, cast the weights and the tiles to that type instead of
            autocast (half-precision I/O end to end; the residual is read back as float32).
        pad: fill a short last batch up to `batch` tiles (the outputs of the filler are
            dropped), so a compiled model (static shapes) never recompiles for it, nor for
            a new picture size; None: when compiled.

    On CUDA, cuDNN picks the fastest convolution for the (fixed) tile shape, and `filter`
    rounds and clips on the device and downloads 16-bit samples; `filter_stream` also
    overlaps the caller's work on one picture with the computation of the next.
    """

    def __init__(self, model, bit_depth: int, ctu: int = 128, device: str = "cpu",
                 batch: int = 16, dtype: str = "fp32", channels_last: bool | None = None,
                 compile: bool = False, cast: bool = False, pad: bool | None = None) -> None:
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
        cuda = self.device.type == "cuda"
        if channels_last is None:
            channels_last = cuda
        if cuda:
            torch.backends.cudnn.benchmark = True  # one tile shape: pick its fastest conv
        self.channels_last = channels_last
        self.pad = compile if pad is None else pad
        self._pinned: dict[tuple[int, int], list] = {}
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
        h, w = stack.shape[1:]
        if out is None:
            out = np.empty((h, w), np.float32)
        out[...] = self._on_device(stack)[0].cpu().numpy()
        return out

    def _on_device(self, stack: np.ndarray):
        """(residual [H, W] × peak, the input planes [K, H, W]), float32 on the device."""
        import torch
        import torch.nn.functional as F

        k, h, w = stack.shape
        grid = CtuGrid(w, h, self.ctu)
        b, c = self.border, self.ctu
        # Integers travel to the device as int16 (exact for ≤ 15-bit samples, half the bytes
        # of float32) and are normalised there.
        planes = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.int16)).to(self.device)
        planes = planes.float()
        x = planes.unsqueeze(0)
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
                m = len(batch)
                if self.pad and m < self.batch:  # the compiled shape: no recompilation
                    batch = torch.cat([batch, batch.new_zeros((self.batch - m, *batch.shape[1:]))])
                if self.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                r = self._forward(batch)
                if r.shape[-2:] != (c, c):
                    raise DataError(f"model returned {tuple(r.shape)} for {p}x{p} tiles; "
                                    f"expected a {c}x{c} residual (border {b})")
                res[start : start + m] = r[:m, 0].float()
        # CTU grid → picture on the device; cut CTUs keep their valid part.
        pic = res.view(grid.rows, grid.cols, c, c).permute(0, 2, 1, 3)
        return pic.reshape(grid.rows * c, grid.cols * c)[:h, :w] * self.peak, planes

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
        if self.device.type != "cuda":
            res = self.residual(self.stack(rec, qp, depth, where))
            y = np.rint(rec.astype(np.float32) + res)
            return np.clip(y, 0, self.peak).astype(rec.dtype)
        return self._download(self._filtered(self.stack(rec, qp, depth, where)), rec.dtype)

    def filter_stream(self, pictures: Iterable[tuple], where: str = "input"
                      ) -> Iterator[np.ndarray]:
        """`filter` of each (rec, qp, depth) in turn, as an iterator. On CUDA picture k + 1
        is computed while the caller uses picture k (two pinned download buffers, an event
        each); elsewhere it is `filter` picture by picture."""
        if self.device.type != "cuda":
            for rec, qp, depth in pictures:
                yield self.filter(rec, qp, depth, where)
            return
        import torch

        pending = None
        for k, (rec, qp, depth) in enumerate(pictures):
            y = self._filtered(self.stack(rec, qp, depth, where))
            buf = self._buffer(y.shape, k % 2)
            buf.copy_(y, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            if pending is not None:
                yield _finish(*pending)
            pending = (done, buf, rec.dtype)
        if pending is not None:
            yield _finish(*pending)

    def _filtered(self, stack: np.ndarray):
        """clip(round(rec + residual)) [H, W] as int16 on the device: the same float32
        arithmetic as the CPU path of `filter`, so the same samples."""
        import torch

        res, planes = self._on_device(stack)
        rec = planes[self.planes.index("rec")]
        return torch.clamp(torch.round(rec + res), 0, self.peak).to(torch.int16)

    def _buffer(self, shape: tuple[int, int], slot: int):
        """Pinned int16 host buffer `slot` of this picture size: 0 and 1 for
        filter_stream, 2 for filter."""
        import torch

        bufs = self._pinned.get(tuple(shape))
        if bufs is None:
            bufs = [torch.empty(tuple(shape), dtype=torch.int16, pin_memory=True)
                    for _ in range(3)]
            self._pinned = {tuple(shape): bufs}  # one picture size at a time
        return bufs[slot]

    def _download(self, y, dtype) -> np.ndarray:
        import torch

        buf = self._buffer(y.shape, 2)
        buf.copy_(y, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _finish(done, buf, dtype)


def _finish(done, buf, dtype) -> np.ndarray:
    """The samples of a pinned int16 buffer once its copy is done, in a fresh array."""
    done.synchronize()
    return buf.numpy().view(np.uint16).astype(dtype)
