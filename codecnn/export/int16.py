"""An int16 fixed-point RDN in the style of JVET NNVC's SADL: what a codec would run.

Why our own and not a library: onnxruntime's quantisation uses real-valued scales and zero
points (its int16 QDQ models are dequantised to float on the CPU), while the in-loop filters
of JVET's NNVC run in SADL with int16 tensors and power-of-two scales, so that a C decoder
reproduces them bit for bit. This module builds that integer model from a trained RDN and
runs it exactly.

Number format: every tensor holds int16 values v with a per-tensor shift q, standing for
v / 2^q. Each convolution has int16 weights at its own shift q_w (the largest that fits the
layer's biggest weight) and a bias at q_in + q_w; it accumulates in int64 (or in a saturating
int32 with `acc_bits=32`, the weights then giving up bits until the calibrated sums fit with
the headroom) and is brought to its output shift q_out (from calibration: the largest q whose
range, with `headroom`, fits int16) by a rounding right shift, ((acc + 2^(s-1)) >> s), then
saturated to [-32768, 32767]. Concatenation and addition first align their inputs to the
smaller shift (rounding right shifts); an addition then saturates at its own calibrated shift.

Both ends are integers, as a codec has them:
- input: the raw planes (rec at its bit depth, QP 0..63, depth), each left-shifted by a
  power of two to span about 10 bits, with the training normalisation (rec/peak, qp/63,
  depth/8) folded into the first convolution's weights;
- output: the tail's weights are scaled by the peak, so its output is the residual in
  samples at shift q; the filtered sample is clip(rec + ((out + 2^(q-1)) >> q), 0, peak).

The program is a flat list of instructions over numbered tensors (as a C implementation
would hold it) and runs on two engines that give identical integers:
- `run_exact`: float64 torch convolutions. Every operand is an integer below 2^53 (|w|, |x|
  < 2^15, at most a few thousand products per output, so |acc| < 2^45), so every product and
  partial sum is exact in float64 whatever the order: the result is the int64 result, at
  BLAS speed. (CPU convolutions in float64 are im2col + GEMM, with no Winograd/FFT transform.)
- `run_reference`: plain numpy int64 (im2col + integer matmul), slow, the reference the tests
  compare `run_exact` with.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
FORMAT = "codecnn-int16-v1"
# Each input plane is left-shifted until its largest value spans about this many bits, so the
# first layer's folded weights (w / (scale · 2^shift)) have similar magnitudes per plane.
INPUT_BITS = 10


@dataclass
class Int16Program:
    """A quantised RDN: instructions over tensor ids, int16 weights, int64 biases, shifts.

    `ops` entries are dicts: {"op": "input"|"conv"|"concat"|"add"|"unshuffle"|"shuffle",
    "out": id, "in": [ids], ...}; `q[id]` is tensor id's shift. Conv entries carry
    "w" (int16 [O, I, k, k]), "b" (int64 [O]), "pad", "relu", "shift" (acc → out).
    """

    planes: tuple[str, ...]
    border: int
    bit_depth: int
    input_shifts: list[int]
    ops: list[dict[str, Any]]
    q: dict[int, int]
    output: int
    stats: dict[str, Any] = field(default_factory=dict)
    acc_bits: int = 64  # accumulator width; sums saturate at ±(2^(acc_bits-1) - 1)
    # Weights as float64 tensors per device, made once by run_exact (not saved).
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def peak(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def output_shift(self) -> int:
        return self.q[self.output]


# --- building: calibrate on float activations, quantise, record instructions -------------


def _shift_for(max_abs: float, headroom: float = 1.0, cap: int = 24) -> int:
    """Largest q with max_abs · headroom · 2^q ≤ 32767 (capped: an all-zero tensor)."""
    if max_abs <= 0:
        return cap
    return min(cap, math.floor(math.log2(INT16_MAX / (max_abs * headroom))))


class _Builder:
    """Walks the RDN once on calibration data in float, recording one instruction per step.

    Each step computes the float value (for the activation ranges) and appends the integer
    instruction with shifts chosen from those ranges; tensor shifts are static, so the
    program needs no data at run time.
    """

    def __init__(self, headroom: float, acc_bits: int) -> None:
        self.headroom = headroom
        self.acc_limit = (1 << (acc_bits - 1)) - 1
        self.ops: list[dict[str, Any]] = []
        self.q: dict[int, int] = {}
        self.max_abs: dict[int, float] = {}
        self.acc_bits = 0

    def _new(self, value, q: int) -> int:
        tid = len(self.q)
        self.q[tid] = q
        self.max_abs[tid] = float(value.abs().max())
        return tid

    def input(self, x, shifts: list[int]) -> tuple[int, Any]:
        tid = self._new(x, 0)
        self.ops.append({"op": "input", "out": tid, "in": [], "shifts": list(shifts)})
        return tid, x

    def conv(self, t: tuple[int, Any], weight, bias, pad: int, relu: bool,
             in_scale=None, out_scale: float = 1.0) -> tuple[int, Any]:
        """A convolution; `in_scale` [I] divides the weights per input channel (folded
        normalisation of the raw input), `out_scale` multiplies weights and bias."""
        import torch
        import torch.nn.functional as F

        tid_in, x = t
        w = weight.detach().double() * out_scale
        if in_scale is not None:
            w = w / torch.as_tensor(in_scale, dtype=torch.float64).view(1, -1, 1, 1)
        b = bias.detach().double() * out_scale
        y = F.conv2d(x, w, b, padding=pad)
        if relu:
            y = F.relu(y)
        q_in = self.q[tid_in]
        q_w = _shift_for(float(w.abs().max()))
        q_out = _shift_for(float(y.abs().max()), self.headroom)
        xi = torch.round(x * 2.0 ** q_in)
        while True:
            wq = torch.round(w * 2.0 ** q_w).clamp(INT16_MIN, INT16_MAX)
            bq = torch.round(b * 2.0 ** (q_in + q_w)).clamp(-self.acc_limit, self.acc_limit)
            # The accumulator's largest magnitude on the calibration data: what a C
            # implementation's accumulator type must hold. With a narrow accumulator
            # (int32), the weights give up precision until it fits with the headroom.
            peak_acc = float(F.conv2d(xi, wq, bq, padding=pad).abs().max())
            if peak_acc * self.headroom <= self.acc_limit or q_w < -8:
                break
            q_w -= max(1, math.ceil(math.log2(peak_acc * self.headroom / self.acc_limit)))
        self.acc_bits = max(self.acc_bits, int(peak_acc).bit_length() + 1)
        tid = self._new(y, q_out)
        self.ops.append({"op": "conv", "out": tid, "in": [tid_in], "pad": pad, "relu": relu,
                         "w": wq.numpy().astype(np.int16), "b": bq.numpy().astype(np.int64),
                         "shift": q_in + q_w - q_out})
        return tid, y

    def concat(self, ts: list[tuple[int, Any]]) -> tuple[int, Any]:
        import torch

        if len(ts) == 1:
            return ts[0]
        y = torch.cat([v for _, v in ts], dim=1)
        tid = self._new(y, min(self.q[i] for i, _ in ts))
        self.ops.append({"op": "concat", "out": tid, "in": [i for i, _ in ts]})
        return tid, y

    def add(self, a: tuple[int, Any], b: tuple[int, Any]) -> tuple[int, Any]:
        y = a[1] + b[1]
        q = min(self.q[a[0]], self.q[b[0]], _shift_for(float(y.abs().max()), self.headroom))
        tid = self._new(y, q)
        self.ops.append({"op": "add", "out": tid, "in": [a[0], b[0]]})
        return tid, y

    def shuffle(self, t: tuple[int, Any], op: str) -> tuple[int, Any]:
        import torch.nn.functional as F

        y = F.pixel_unshuffle(t[1], 2) if op == "unshuffle" else F.pixel_shuffle(t[1], 2)
        tid = self._new(y, self.q[t[0]])
        self.ops.append({"op": op, "out": tid, "in": [t[0]]})
        return tid, y


def input_shifts(planes: tuple[str, ...], bit_depth: int) -> list[int]:
    """Left shift per raw input plane so its largest value spans about INPUT_BITS bits."""
    from codecnn.io.shard import plane_scales

    out = []
    for top in plane_scales(planes, (1 << bit_depth) - 1):
        out.append(max(0, math.floor(math.log2(((1 << INPUT_BITS) - 1) / top))))
    return out


def plane_scales(planes: tuple[str, ...], bit_depth: int) -> list[float]:
    """The training normalisation per plane: rec/peak, qp/63, depth/8 (codecnn.io.shard)."""
    from codecnn.io.shard import plane_scales as scales

    return scales(planes, (1 << bit_depth) - 1)


def quantise_rdn(model, calib_raw: np.ndarray, bit_depth: int,
                 headroom: float = 2.0, acc_bits: int = 64) -> Int16Program:
    """Build the int16 program of a trained RDN (codecnn.models.rdn).

    calib_raw: integer input planes [N, len(planes), P, P] (raw rec, QP, depth) from real
    CTUs, used only for the activation ranges. headroom: factor over the calibrated range
    kept free before saturation (2.0 = one bit). acc_bits: the accumulator's width in the
    C implementation (64, or 32 as SIMD int16 kernels use); accumulators saturate there.
    """
    import torch

    from codecnn.models.rdn import RDN

    if not isinstance(model, RDN):
        raise DataError(f"the int16 model is built for RDN only, not {type(model).__name__} "
                        "(export it as ONNX, or as int8)")
    cfg = model.config
    planes = tuple(cfg.planes)
    shifts = input_shifts(planes, bit_depth)
    scale = plane_scales(planes, bit_depth)
    if acc_bits not in (32, 64):
        raise DataError(f"accumulator width must be 32 or 64 bits, got {acc_bits}")
    b = _Builder(headroom, acc_bits)
    x = torch.from_numpy(np.asarray(calib_raw, np.int64)).double()
    x = x * torch.tensor([float(1 << s) for s in shifts], dtype=torch.float64).view(1, -1, 1, 1)
    with torch.no_grad():
        t = b.input(x, shifts)
        in_scale = [sc * (1 << s) for sc, s in zip(scale, shifts, strict=True)]
        for i, conv in enumerate(model.head):
            t = b.conv(t, conv.weight, conv.bias, conv.padding[0], relu=False,
                       in_scale=in_scale if i == 0 else None)
        if model.down is not None:
            t = b.conv(b.shuffle(t, "unshuffle"), model.down.weight, model.down.bias, 0, False)
        s = h = t
        outs = []
        for block in model.blocks:
            feats = [h]
            for conv in block.convs:
                feats.append(b.conv(b.concat(feats), conv.weight, conv.bias, 1, relu=True))
            h = b.add(h, b.conv(b.concat(feats), block.fuse.weight, block.fuse.bias, 0, False))
            outs.append(h)
        g0, g1 = model.gff
        h = b.conv(b.concat(outs), g0.weight, g0.bias, 0, False)
        h = b.add(b.conv(h, g1.weight, g1.bias, 1, False), s)
        if model.up is not None:
            h = b.shuffle(b.conv(h, model.up.weight, model.up.bias, 1, False), "shuffle")
        # The residual leaves the tail in samples (× peak) rather than normalised.
        out = b.conv(h, model.tail.weight, model.tail.bias, 1, False,
                     out_scale=float((1 << bit_depth) - 1))
    stats = {"accumulator_bits": b.acc_bits, "accumulator_width": acc_bits,
             "headroom": headroom,
             "calibration_patches": int(len(calib_raw)),
             "weight_shifts": _weight_shifts(b.ops, b.q)}
    return Int16Program(planes, int(cfg.border), bit_depth, shifts, b.ops, b.q, out[0], stats,
                        acc_bits)


def _weight_shifts(ops: list[dict[str, Any]], q: dict[int, int]) -> list[int]:
    return [op["shift"] + q[op["out"]] - q[op["in"][0]] for op in ops if op["op"] == "conv"]


# --- running --------------------------------------------------------------------------------


def _round_shift_np(v: np.ndarray, s: int) -> np.ndarray:
    """v · 2^-s rounded half up (s > 0), or v · 2^-s exactly (s ≤ 0); int64."""
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    return v << (-s)


def _sat_np(v: np.ndarray) -> np.ndarray:
    return np.clip(v, INT16_MIN, INT16_MAX)


def _conv_np(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int,
             acc_bits: int = 64) -> np.ndarray:
    """Integer convolution (cross-correlation, as torch): x [N,I,H,W], w [O,I,k,k] →
    [N,O,H',W'], the sum saturated to `acc_bits` (the int64 sum cannot overflow: < 2^45).

    A saturating accumulator is saturated once, after the whole sum: a C implementation with
    a narrow accumulator must saturate the same way (or be shown never to reach the limit).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    k = w.shape[-1]
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = sliding_window_view(x, (k, k), axis=(2, 3))  # [N, I, H', W', k, k]
    n, i, h, ww = cols.shape[:4]
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * ww, i * k * k)
    acc = cols.astype(np.int64) @ w.reshape(len(w), -1).astype(np.int64).T + b
    if acc_bits < 64:
        lim = (1 << (acc_bits - 1)) - 1
        acc = np.clip(acc, -lim, lim)
    return acc.reshape(n, h, ww, -1).transpose(0, 3, 1, 2)


def _unshuffle_np(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * 4, h // 2, w // 2)


def _shuffle_np(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    x = x.reshape(n, c // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // 4, h * 2, w * 2)


def run_reference(prog: Int16Program, raw: np.ndarray) -> np.ndarray:
    """The integer reference: raw input planes [N, C, H, W] (integers) → the output tensor
    [N, 1, H-2b, W-2b] int16 at shift `prog.output_shift` (residual in samples · 2^q)."""
    vals: dict[int, np.ndarray] = {}
    q = prog.q
    for op in prog.ops:
        kind, out = op["op"], op["out"]
        ins = [vals[i] for i in op["in"]]
        if kind == "input":
            v = np.asarray(raw, np.int64) << np.array(op["shifts"]).reshape(1, -1, 1, 1)
            v = _sat_np(v)
        elif kind == "conv":
            v = _conv_np(ins[0], op["w"], op["b"], op["pad"], prog.acc_bits)
            v = _sat_np(_round_shift_np(v, op["shift"]))
            if op["relu"]:
                v = np.maximum(v, 0)
        elif kind == "concat":
            v = np.concatenate([_round_shift_np(a, q[i] - q[out])
                                for a, i in zip(ins, op["in"], strict=True)], axis=1)
        elif kind == "add":
            lo = min(q[i] for i in op["in"])
            v = sum(_round_shift_np(a, q[i] - lo) for a, i in zip(ins, op["in"], strict=True))
            v = _sat_np(_round_shift_np(v, lo - q[out]))
        elif kind == "unshuffle":
            v = _unshuffle_np(ins[0])
        elif kind == "shuffle":
            v = _shuffle_np(ins[0])
        else:
            raise DataError(f"int16 program: unknown instruction {kind!r}")
        vals[out] = v
    return vals[prog.output].astype(np.int16)


def _round_shift_t(v, s: int):
    """Float64 tensor of integers: v · 2^-s rounded half up (exact: power-of-two division)."""
    import torch

    if s > 0:
        return torch.floor((v + float(1 << (s - 1))) / float(1 << s))
    return v * float(1 << (-s))


def run_exact(prog: Int16Program, raw, device: str = "cpu"):
    """Same integers as `run_reference`, computed with float64 torch operations (see the
    module docstring for why that is exact). raw: integer planes [N, C, H, W] (numpy or
    torch). Returns int16 numpy [N, 1, H-2b, W-2b] at shift `prog.output_shift`."""
    import torch
    import torch.nn.functional as F

    key = str(device)
    if key not in prog.cache:  # converted once per device, not per call
        prog.cache[key] = {op["out"]: (torch.from_numpy(op["w"].astype(np.float64)).to(device),
                                    torch.from_numpy(op["b"].astype(np.float64)).to(device))
                        for op in prog.ops if op["op"] == "conv"}
    wts = prog.cache[key]
    acc_lim = float((1 << (prog.acc_bits - 1)) - 1)
    q = prog.q
    vals: dict[int, Any] = {}
    # cuDNN may pick FFT/Winograd algorithms, whose transforms are not exact: off.
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
        for op in prog.ops:
            kind, out = op["op"], op["out"]
            ins = [vals[i] for i in op["in"]]
            if kind == "input":
                x = torch.as_tensor(np.asarray(raw)).to(device=device, dtype=torch.float64)
                sh = torch.tensor([float(1 << s) for s in op["shifts"]], dtype=torch.float64,
                                  device=device)
                v = (x * sh.view(1, -1, 1, 1)).clamp(INT16_MIN, INT16_MAX)
            elif kind == "conv":
                w, b = wts[out]
                v = F.conv2d(ins[0], w, b, padding=op["pad"])
                if prog.acc_bits < 64:
                    v = v.clamp(-acc_lim, acc_lim)
                v = _round_shift_t(v, op["shift"]).clamp(INT16_MIN, INT16_MAX)
                if op["relu"]:
                    v = v.clamp_min(0)
            elif kind == "concat":
                v = torch.cat([_round_shift_t(a, q[i] - q[out])
                               for a, i in zip(ins, op["in"], strict=True)], dim=1)
            elif kind == "add":
                lo = min(q[i] for i in op["in"])
                a, c = (_round_shift_t(t, q[i] - lo) for t, i in zip(ins, op["in"], strict=True))
                v = _round_shift_t(a + c, lo - q[out]).clamp(INT16_MIN, INT16_MAX)
            elif kind == "unshuffle":
                v = F.pixel_unshuffle(ins[0], 2)
            elif kind == "shuffle":
                v = F.pixel_shuffle(ins[0], 2)
            else:
                raise DataError(f"int16 program: unknown instruction {kind!r}")
            vals[out] = v
    return vals[prog.output].cpu().numpy().astype(np.int16)


def residual_samples(prog: Int16Program, out: np.ndarray) -> np.ndarray:
    """The integer residual in samples, ((out + 2^(q-1)) >> q), as the codec adds it to rec."""
    return _round_shift_np(out.astype(np.int64), prog.output_shift)


# --- files ----------------------------------------------------------------------------------


def save_program(prog: Int16Program, path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write the program as .npz: a JSON header (instructions, shifts, planes, `meta`) and one
    int16 weight and one int64 bias array per convolution. Atomic."""
    from codecnn.io.atomic import atomic_output

    arrays: dict[str, np.ndarray] = {}
    ops = []
    for op in prog.ops:
        entry = {k: v for k, v in op.items() if k not in ("w", "b")}
        if op["op"] == "conv":
            arrays[f"w{op['out']}"], arrays[f"b{op['out']}"] = op["w"], op["b"]
        ops.append(entry)
    stats = dict(prog.stats)
    header = {"format": FORMAT, "planes": list(prog.planes), "border": prog.border,
              "bit_depth": prog.bit_depth, "input_shifts": prog.input_shifts,
              "acc_bits": prog.acc_bits,
              "q": {str(k): v for k, v in prog.q.items()}, "output": prog.output, "ops": ops,
              "stats": stats, "meta": meta}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_program(path: str | os.PathLike) -> tuple[Int16Program, dict[str, Any]]:
    """(program, meta) from a file `save_program` wrote; DataError naming the file otherwise."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such int16 model file")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            arrays = {k: z[k] for k in z.files if k != "header"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a codecnn int16 model ({str(e)[:80]})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{path}: not a codecnn int16 model (format is not {FORMAT})")
    ops = []
    for entry in header["ops"]:
        op = dict(entry)
        if op["op"] == "conv":
            op["w"], op["b"] = arrays[f"w{op['out']}"], arrays[f"b{op['out']}"]
        ops.append(op)
    prog = Int16Program(tuple(header["planes"]), int(header["border"]),
                        int(header["bit_depth"]), list(header["input_shifts"]), ops,
                        {int(k): int(v) for k, v in header["q"].items()},
                        int(header["output"]), dict(header.get("stats", {})),
                        int(header.get("acc_bits", 64)))
    return prog, header.get("meta", {})
