"""Whole-picture filtering, CTU by CTU, as an in-loop filter applies a CTU-based network.

The luma picture [H, W] is cut on the CTU grid that extraction cuts training patches on
(codecnn.io.grid.CtuGrid, with the model's border b): padded by b on every side by
replicating the picture edge (and, at the right/bottom, up to a whole number of CTUs), then
taken as (C + 2b)×(C + 2b) tiles, each holding its CTU and b samples of its neighbours,
exactly as the training patches do. Tiles go through the model in batches; each CTU's valid
part (less than C×C for CTUs cut by the picture edge) is written back, so every pixel of the
picture is covered once. For a model whose receptive field does not reach past its border
(unpadded convolutions only) the result equals one whole-picture pass.

Model inputs are normalised by codecnn.io.shard.normalise, as in training (rec/peak, qp/63,
depth/8); the model returns the residual [N, 1, C, C] normalised by peak; the output is
clip(round(rec + res·peak)).

Memory: the padded integer planes are uploaded once per picture; each batch's tiles are
normalised into one input buffer and each batch's residual is written into one picture
buffer, both kept from picture to picture. The network's own activations are B times
larger at batch B; on the CPU, once they pass glibc's mmap threshold each one is a fresh
mapping, page-faulted in and unmapped again at every layer, so `default_batch` keeps them
under it (BENCHMARKS.md, "Inference").
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from codecnn.errors import DataError
from codecnn.io.grid import CtuGrid, CtuPosition
from codecnn.io.shard import PLANES, normalise

DTYPES = ("fp32", "bf16", "fp16")
# On the CPU, the batch whose largest activation stays under this many bytes (at most
# MAX_CPU_BATCH CTUs). glibc serves a large allocation from a fresh mapping that is
# page-faulted in and unmapped again at every layer: above about 24 MiB per activation
# (rdn-s at batch 4, rdn-cpu at 16) that cost 1.1-1.4x per CTU; below it freed memory is
# reused and a batch only saves per-call overhead (0.85x at batch 10-15 for rdn-cpu).
# Measured by tools/bench_infer.py --batches (BENCHMARKS.md, "Inference"); 16 MiB keeps a margin.
CPU_ACTIVATION_BYTES = 16 << 20
MAX_CPU_BATCH = 16
CUDA_BATCH = 16  # keeps the GPU busy; cuDNN picks its convolutions for the fixed shape


def default_batch(model, device: str = "cpu", ctu: int = 128) -> int:
    """CTUs per forward pass when none is given: on CUDA, CUDA_BATCH; elsewhere the largest
    batch (1..MAX_CPU_BATCH) whose largest activation fits in CPU_ACTIVATION_BYTES, found by
    one tile through `model` (10 for the shipped rdn-cpu models, 2 for rdn-s, 1 for rdn-m)."""
    import torch

    if torch.device(device).type == "cuda":
        return CUDA_BATCH
    p = ctu + 2 * int(model.config.border)
    largest = [1]

    def note(_module, inputs, output) -> None:
        for t in (*inputs, output):
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.nbytes)

    from codecnn.models.common import forward_hooks

    leaves = [m for m in model.modules() if not list(m.children())]
    param = next(model.parameters(), None)
    like = {} if param is None else {"device": param.device, "dtype": param.dtype}
    with forward_hooks((m, note) for m in leaves), torch.inference_mode():
        model(torch.zeros((1, len(model.config.planes), p, p), **like))
    return max(1, min(MAX_CPU_BATCH, CPU_ACTIVATION_BYTES // largest[0]))


def side_planes(planes: Sequence[str], shape: tuple[int, int], qp: int | np.ndarray | None,
                depth: np.ndarray | None, where: str = "input") -> dict[str, np.ndarray]:
    """The side-info planes a model asks for, each [H, W]; DataError naming what is missing."""
    out: dict[str, np.ndarray] = {}
    for name in planes:
        if name == "rec":
            continue
        value = {"qp": qp, "depth": depth}.get(name)
        if name not in PLANES:
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
        device: "cpu", "cuda", ... ; batch: CTUs per forward pass (None: `default_batch`;
            on the CPU a batch whose activations are too large costs more per CTU).
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
                 batch: int | None = None, dtype: str = "fp32",
                 channels_last: bool | None = None,
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
        self.dtype = dtype
        cuda = self.device.type == "cuda"
        if channels_last is None:
            channels_last = cuda
        if cuda:
            torch.backends.cudnn.benchmark = True  # one tile shape: pick its fastest conv
        self.channels_last = channels_last
        self.pad = compile if pad is None else pad
        self._pinned: dict[tuple[int, int], list] = {}
        self._inputs = None  # float32 [batch, K, P, P]: each batch's tiles, normalised
        self._pictures: dict[tuple[int, int], object] = {}  # float32 residual per grid size
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
        self.batch = (default_batch(self.model, device, ctu) if batch is None
                      else max(1, batch))
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._forward = torch.compile(self.model, mode=mode, dynamic=False)

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

    def batches(self, stack: np.ndarray) -> Iterator[tuple[list[CtuPosition], object]]:
        """The model's inputs for one picture, `batch` CTUs at a time in raster order:
        (their positions, float32 tiles [m, K, P, P] on the device, normalised).

        stack: integer planes [K, H, W] as for `residual`. Each tile is the training patch of
        its CTU (same grid, same edge padding, same normalisation). The tensor is a buffer
        that the next batch overwrites.
        """
        padded, grid = self._upload(stack)
        positions = grid.positions()
        for start, x in self._batches(padded, grid):
            yield positions[start : start + len(x)], x

    def _upload(self, stack: np.ndarray):
        """(the planes padded on the grid, int16 [K, Hp, Wp] on the device; the grid)."""
        import torch

        k, h, w = stack.shape
        if k != len(self.planes):
            raise DataError(f"{k} input planes for a model of {len(self.planes)} "
                            f"({', '.join(self.planes)})")
        grid = CtuGrid(w, h, self.ctu, self.border)
        # Integers travel to the device as int16 (exact for ≤ 15-bit samples, half the bytes
        # of float32) and are normalised there, a batch at a time.
        padded = grid.pad(np.asarray(stack, dtype=np.int16))
        return torch.from_numpy(padded).to(self.device), grid

    def _batches(self, padded, grid: CtuGrid) -> Iterator[tuple[int, object]]:
        """(index of the first CTU, normalised tiles [m, K, P, P]) per batch; the tiles live
        in one buffer, reused from batch to batch and picture to picture."""
        import torch

        k, p = padded.shape[0], grid.patch_size
        tiles = grid.tiles(padded).permute(1, 2, 0, 3, 4)  # a view [rows, cols, K, P, P]
        shape = (self.batch, k, p, p)
        if self._inputs is None or tuple(self._inputs.shape) != shape:
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            with torch.inference_mode(False):  # a normal tensor: `batches` writes it outside
                self._inputs = torch.empty(shape, dtype=torch.float32, device=self.device,
                                           memory_format=fmt)
        n, cols = len(grid), grid.cols
        for start in range(0, n, self.batch):
            m = min(self.batch, n - start)
            i = start
            while i < start + m:  # a batch may span CTU rows: one copy per row it touches
                r, c0 = divmod(i, cols)
                c1 = min(cols, c0 + start + m - i)
                normalise(tiles[r, c0:c1], self.planes, self.peak,
                          out=self._inputs[i - start : i - start + c1 - c0])
                i += c1 - c0
            yield start, self._inputs[:m]

    def _on_device(self, stack: np.ndarray):
        """(residual [H, W] × peak, the padded input planes [K, Hp, Wp]), float32 and int16
        on the device; the residual is a view of a buffer that the next picture reuses."""
        import torch

        padded, grid = self._upload(stack)
        b, c, p = self.border, self.ctu, grid.patch_size
        h, w = grid.height, grid.width
        res = self._pictures.get((grid.rows, grid.cols))
        if res is None:  # one picture size at a time
            res = torch.empty((grid.rows * c, grid.cols * c), dtype=torch.float32,
                              device=self.device)
            self._pictures = {(grid.rows, grid.cols): res}
        with torch.inference_mode(), self._autocast():
            for start, x in self._batches(padded, grid):
                m = len(x)
                if self.pad and m < self.batch:  # the compiled shape: no recompilation
                    x = self._inputs
                    x[m:].zero_()
                if self.cast:
                    x = x.to(self._in_dtype)
                r = self._forward(x)
                if r.shape[-2:] != (c, c):
                    raise DataError(f"model returned {tuple(r.shape)} for {p}x{p} tiles; "
                                    f"expected a {c}x{c} residual (border {b})")
                _place(res, r[:m, 0].float(), start, grid.cols, c, self.peak)
        return res[:h, :w], padded

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
            y = self.residual(self.stack(rec, qp, depth, where))
            y += rec  # in place: the same float32 sums as rec + residual
            np.rint(y, out=y)
            np.clip(y, 0, self.peak, out=y)
            return y.astype(rec.dtype)
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

        res, padded = self._on_device(stack)
        b, (h, w) = self.border, res.shape
        rec = padded[self.planes.index("rec"), b : b + h, b : b + w]
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


def _place(res, r, start: int, cols: int, c: int, peak: int) -> None:
    """Write CTUs start, start + 1, ... (residuals r [m, C, C], raster order) × peak into
    the picture buffer res [rows·C, cols·C], one strided copy per CTU row they touch."""
    import torch

    i, end = start, start + len(r)
    while i < end:
        row, c0 = divmod(i, cols)
        c1 = min(cols, c0 + end - i)
        dst = res[row * c : (row + 1) * c, c0 * c : c1 * c].view(c, c1 - c0, c)
        torch.mul(r[i - start : i - start + c1 - c0].transpose(0, 1), peak, out=dst)
        i += c1 - c0


def _finish(done, buf, dtype) -> np.ndarray:
    """The samples of a pinned int16 buffer once its copy is done, in a fresh array."""
    done.synchronize()
    return buf.numpy().view(np.uint16).astype(dtype)
