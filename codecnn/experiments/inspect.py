"""A look inside a trained filter through forward hooks (`codecnn inspect`).

For a sample of CTUs (from shards, or cut from a decoded YUV and its original) it writes:

    OUT/inspect.json          per-layer statistics, the CTUs shown, the model and the data
    OUT/layers.md             the statistics as a table
    OUT/activations_<layer>.png   per chosen layer: rows = CTUs, columns = rec + the most
                              active channels (largest standard deviation over the sample)
    OUT/residual.png          per CTU: rec, true residual, predicted residual, what is left

Statistics cover every convolution plus the chosen layers, over the whole sample: mean and
standard deviation of the layer's output, and for a convolution followed by a ReLU (the dense
layers of an RDB, whose ReLU is a function call, not a module) the output after the ReLU,
the fraction of zeros and the fraction of dead channels (zero at every position of every
CTU of the sample: a dead ReLU). nn.ReLU modules are hooked as they are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codecnn.errors import CodecnnError, DataError
from codecnn.models.common import forward_hooks


@dataclass
class Patches:
    """CTUs as the network sees them.

    inputs  float32 [N, planes, P, P], normalised as codecnn.datasets defines (rec/peak, …)
    target  float32 [N, 1, C, C]: (orig − rec)/peak of the CTU;  valid  [N, 1, C, C] 0/1
    labels: one short line per CTU (sequence, QP, POC, position); meta: the same as dicts.
    """

    inputs: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor
    peak: float
    border: int
    labels: list[str]
    meta: list[dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)


def _spread(n: int, k: int) -> np.ndarray:
    """k indices evenly spaced over 0..n-1 (all of them when k >= n)."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def patches_from_shards(paths: list[str], planes: tuple[str, ...], sample: int) -> Patches:
    """`sample` patches evenly spaced over the shards (every sequence and QP in turn)."""
    from codecnn.datasets import ShardDataset

    ds = ShardDataset(paths, planes=planes)
    idx = _spread(len(ds), sample)
    items = [ds[int(i)] for i in idx]
    ds.close()
    meta = [{"index": int(i), "sequence": it["sequence"], "nominal_qp": it["nominal_qp"],
             "poc": it["poc"], "x": int(ds.meta[i]["ctu_x"]), "y": int(ds.meta[i]["ctu_y"])}
            for i, it in zip(idx, items, strict=True)]
    return Patches(
        inputs=torch.stack([it["input"] for it in items]),
        target=torch.stack([it["target"] for it in items]),
        valid=torch.stack([it["valid"] for it in items]),
        peak=ds.peak, border=ds.border, labels=[_label(m) for m in meta], meta=meta,
        source={"kind": "shards", "paths": [str(p) for p in ds.paths],
                "bit_depth": ds.bit_depth, "patches": len(ds)})


def patches_from_yuv(rec: str, orig: str, planes: tuple[str, ...], sample: int, border: int,
                     size: tuple[int, int] | None = None, bit_depth: int | None = None,
                     qp: int | None = None) -> Patches:
    """Up to `sample` CTUs of a decoded YUV (raster order, frame after frame) with the true
    residual from its original; `qp` fills the QP plane (the slice QP)."""
    from codecnn.io.grid import CtuGrid
    from codecnn.io.shard import normalise
    from codecnn.io.yuv import open_yuv

    if "depth" in planes:
        raise DataError(f"{rec}: the model takes a depth plane, which a YUV file does not "
                        f"carry; inspect it on shards with depth (--data)")
    if "qp" in planes and qp is None:
        raise DataError(f"{rec}: the model takes a QP plane; give --qp (the slice QP)")
    w, h = size if size else (None, None)
    r = open_yuv(rec, width=w, height=h, bit_depth=bit_depth)
    o = open_yuv(orig, fmt=r.format)
    if len(o) < len(r):
        raise DataError(f"{orig}: {len(o)} frame(s), fewer than the {len(r)} of {rec}")
    grid = CtuGrid(r.format.width, r.format.height, 128, border)
    positions = grid.positions()
    per_frame = len(positions)
    frames = min(len(r), -(-sample // per_frame))
    peak = float((1 << r.format.bit_depth) - 1)
    ins, tgt, val, meta = [], [], [], []
    for k in range(frames):
        rp = grid.cut(np.asarray(r.luma(k)), positions, dtype=np.float32)
        op = grid.cut(np.asarray(o.luma(k)), positions, border=0, dtype=np.float32)
        ins.append(normalise(np.stack([rp if p == "rec" else np.full_like(rp, qp)
                                       for p in planes], axis=1), planes, peak))
        tgt.append((op - rp[:, border:border + 128, border:border + 128])[:, None] / peak)
        v = np.zeros((per_frame, 1, 128, 128), np.float32)
        for i, p in enumerate(positions):
            v[i, 0, :p.valid_h, :p.valid_w] = 1.0
            meta.append({"sequence": Path(rec).name, "nominal_qp": qp, "poc": k,
                         "x": p.x, "y": p.y})
        val.append(v)
    keep = _spread(len(meta), sample)
    cat = {name: torch.from_numpy(np.concatenate(a)[keep])
           for name, a in (("inputs", ins), ("target", tgt), ("valid", val))}
    meta = [meta[i] for i in keep]
    return Patches(**cat, peak=peak, border=border, labels=[_label(m) for m in meta],
                   meta=meta, source={"kind": "yuv", "rec": str(rec), "orig": str(orig),
                                      "bit_depth": r.format.bit_depth, "qp": qp})


def _label(m: dict[str, Any]) -> str:
    qp = "" if m.get("nominal_qp") is None else f" QP{m['nominal_qp']}"
    return f"{m['sequence']}{qp} POC{m['poc']} ({m['x']},{m['y']})"


# ----------------------------------------------------------------------------- layers


def relu_after(model: nn.Module) -> set[str]:
    """Convolutions whose output goes through a ReLU that is a function call, not a module:
    the dense layers of every RDB (codecnn.models.rdn: conv + ReLU)."""
    from codecnn.models.rdn import RDB

    out = set()
    for name, mod in model.named_modules():
        if isinstance(mod, RDB):
            out |= {f"{name}.convs.{i}" for i in range(len(mod.convs))}
    return out


def default_layers(model: nn.Module) -> list[str]:
    """The stages a reader looks at first: the head, the first dense layer (where dead ReLUs
    show), the output of every residual dense block, the global feature fusion."""
    names = dict(model.named_modules())
    want = ["head", "blocks.0.convs.0",
            *[n for n in names if re.fullmatch(r"blocks\.\d+", n)], "gff"]
    chosen = [n for n in want if n in names]
    return chosen or [n for n, _ in model.named_children()]


class _Moments:
    """Mean, variance (Chan's parallel update, float64) and per-channel sums of a layer's
    output; zeros and per-channel maxima of its pre-activation when a ReLU follows."""

    def __init__(self, relu: bool) -> None:
        self.relu = relu
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.ch_sum = self.ch_sq = self.ch_max = None
        self.ch_n = 0
        self.zeros = 0
        self.shape: list[int] = []
        self.min, self.max = math.inf, -math.inf

    def add(self, out: torch.Tensor, pre_relu: bool) -> None:
        t = out.detach().double()
        if pre_relu:
            self.zeros += int((t <= 0).sum())
            cmax = t.amax(dim=(0, 2, 3))
            self.ch_max = cmax if self.ch_max is None else torch.maximum(self.ch_max, cmax)
            t = t.clamp_min(0)
        self.shape = list(t.shape[1:])
        bn, bm = t.numel(), float(t.mean())
        bm2 = float((t - bm).square().sum())
        delta, n = bm - self.mean, self.n + bn
        self.mean += delta * bn / n
        self.m2 += bm2 + delta * delta * self.n * bn / n
        self.n = n
        cs, cq = t.sum(dim=(0, 2, 3)), t.square().sum(dim=(0, 2, 3))
        self.ch_sum = cs if self.ch_sum is None else self.ch_sum + cs
        self.ch_sq = cq if self.ch_sq is None else self.ch_sq + cq
        self.ch_n += t.numel() // t.shape[1]
        self.min, self.max = min(self.min, float(t.min())), max(self.max, float(t.max()))

    def channel_std(self) -> torch.Tensor:
        m = self.ch_sum / self.ch_n
        return (self.ch_sq / self.ch_n - m.square()).clamp_min(0).sqrt()

    def summary(self, name: str, kind: str) -> dict[str, Any]:
        dead = None if self.ch_max is None else (self.ch_max <= 0)
        return {
            "layer": name, "module": kind, "shape": self.shape, "relu": self.relu,
            "mean": self.mean, "std": math.sqrt(max(self.m2 / max(self.n, 1), 0.0)),
            "min": self.min, "max": self.max,
            "zero_fraction": self.zeros / self.n if self.relu else None,
            "dead_fraction": float(dead.double().mean()) if dead is not None else None,
            "dead_channels": [int(i) for i in torch.nonzero(dead).flatten()]
            if dead is not None else None,
        }


def layer_statistics(model: nn.Module, x: torch.Tensor, layers: list[str],
                     batch: int = 8) -> tuple[dict[str, _Moments], torch.Tensor]:
    """Moments of every convolution, every nn.ReLU and every layer in `layers` over the
    sample `x`; also returns the model's output [N, 1, C, C]."""
    modules = dict(model.named_modules())
    unknown = [n for n in layers if n not in modules]
    if unknown:
        some = ", ".join(n for n in list(modules)[1:13])
        raise CodecnnError(f"no layer {unknown[0]!r} in the model (layers: {some}, …)")
    relu = relu_after(model)
    tracked = [n for n, m in modules.items()
               if n and (isinstance(m, nn.Conv2d | nn.ReLU) or n in layers)]
    moments = {n: _Moments(relu=n in relu or isinstance(modules[n], nn.ReLU))
               for n in tracked}

    def hook(name: str):
        def fn(mod, inp, out):
            if isinstance(out, torch.Tensor):
                if isinstance(mod, nn.ReLU):  # a ReLU module: zeros from its input
                    moments[name].add(inp[0], pre_relu=True)
                else:
                    moments[name].add(out, pre_relu=name in relu)
        return fn

    outs = []
    with forward_hooks((modules[n], hook(n)) for n in tracked), torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(x[i:i + batch]).float())
    never = [n for n in layers if moments[n].n == 0]
    if never:
        raise CodecnnError(f"layer {never[0]!r} never produced a tensor (a container? pick "
                           f"one of its children)")
    return moments, torch.cat(outs)


def capture(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of `layers` for the CTUs `x` (after the ReLU for RDB dense layers)."""
    modules = dict(model.named_modules())
    relu = relu_after(model)
    maps: dict[str, torch.Tensor] = {}

    def keep(n: str):
        def fn(mod, inp, out):
            if isinstance(out, torch.Tensor):
                maps[n] = (out.clamp_min(0) if n in relu else out).detach().float().cpu()
        return fn

    with forward_hooks((modules[n], keep(n)) for n in layers), torch.no_grad():
        model(x)
    return maps


# ----------------------------------------------------------------------------- figures


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def plot_activations(name: str, maps: torch.Tensor, rec: torch.Tensor, labels: list[str],
                     channel_std: torch.Tensor, dead: list[int] | None, relu: bool,
                     k: int, path: Path) -> list[int]:
    """Rows = CTUs, columns = the CTU's rec, then the k channels of largest standard
    deviation over the sample; each channel on one colour scale over the rows. Returns the
    channels shown."""
    from codecnn.analysis.outputs import pyplot, save_figure

    plt = pyplot()
    channels = [int(c) for c in torch.argsort(channel_std, descending=True)[:k]]
    n = maps.shape[0]
    fig, axes = plt.subplots(n, len(channels) + 1, squeeze=False,
                             figsize=(1.45 * (len(channels) + 1), 1.5 * n + 0.7))
    for r in range(n):
        axes[r][0].imshow(rec[r].numpy(), cmap="gray")
        axes[r][0].set_ylabel(labels[r], fontsize=6, rotation=0, ha="right", va="center")
    axes[0][0].set_title("rec", fontsize=8)
    for j, c in enumerate(channels, start=1):
        m = maps[:, c].numpy()
        if relu or float(m.min()) >= 0:
            kw = {"cmap": "magma", "vmin": 0.0, "vmax": max(float(m.max()), 1e-12)}
        else:
            v = max(float(np.abs(m).max()), 1e-12)
            kw = {"cmap": "RdBu_r", "vmin": -v, "vmax": v}
        for r in range(n):
            axes[r][j].imshow(m[r], **kw)  # one scale per channel over the rows
        axes[0][j].set_title(f"ch {c}\nσ {float(channel_std[c]):.2g}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    dead_note = ""
    if dead is not None:
        dead_note = (f"; dead ReLU channels: {len(dead)}/{maps.shape[1]}"
                     + (f" (ch {', '.join(map(str, dead[:12]))}{' …' if len(dead) > 12 else ''})"
                        if dead else ""))
    fig.suptitle(f"{name}: {maps.shape[1]} channels of {maps.shape[2]}×{maps.shape[3]}, "
                 f"the {len(channels)} most active shown{dead_note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return channels


def plot_residuals(p: Patches, pred: torch.Tensor, rows: list[int], ctu_stats: list[dict],
                   bit_depth: int, path: Path) -> None:
    """Per CTU: rec, true residual (orig − rec), predicted residual, true − predicted; the
    three residuals on one symmetric scale in code values."""
    from codecnn.analysis.outputs import pyplot, save_figure

    plt = pyplot()
    b = p.border
    true = (p.target[rows, 0] * p.peak).numpy()
    guess = (pred[rows, 0] * p.peak).numpy()
    v = max(float(np.percentile(np.abs(true), 99)), 1.0)
    fig, axes = plt.subplots(len(rows), 4, squeeze=False, figsize=(8.6, 2.15 * len(rows) + 0.6))
    titles = ["rec", "true residual (orig − rec)", "predicted residual", "left (true − pred)"]
    for r, i in enumerate(rows):
        rec = p.inputs[i, 0, b:b + 128, b:b + 128].numpy() * p.peak
        axes[r][0].imshow(rec, cmap="gray")
        for j, img in enumerate((true[r], guess[r], true[r] - guess[r]), start=1):
            im = axes[r][j].imshow(img, cmap="RdBu_r", vmin=-v, vmax=v)
        s = ctu_stats[r]
        axes[r][0].set_ylabel(f"{p.labels[i]}\ngain {s['gain_db']:+.3f} dB, "
                              f"corr {s['corr']:+.2f}\nσ pred {s['pred_std']:.2g} / true "
                              f"{s['true_std']:.2g}", fontsize=7)
    for j, t in enumerate(titles):
        axes[0][j].set_title(t, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), fraction=0.025, pad=0.01,
                 label=f"code values ({bit_depth}-bit)")
    fig.suptitle("Predicted vs true coding error (same scale); gain: PSNR-Y of the CTU "
                 "after − before filtering", fontsize=9)
    save_figure(fig, path)


def ctu_stats(p: Patches, pred: torch.Tensor, i: int) -> dict[str, Any]:
    """PSNR gain of one CTU as the decoder would output it (rec + residual rounded and
    clipped to [0, peak]) over its valid samples, and corr(predicted, true residual)."""
    b, peak = p.border, p.peak
    valid = p.valid[i, 0].numpy() > 0
    rec = np.round(p.inputs[i, 0, b:b + 128, b:b + 128].double().numpy() * peak)
    orig = rec + np.round(p.target[i, 0].double().numpy() * peak)
    filt = np.clip(np.round(rec + pred[i, 0].double().numpy() * peak), 0, peak)
    mse_rec = float(((orig - rec)[valid] ** 2).mean())
    mse_filt = float(((orig - filt)[valid] ** 2).mean())
    t, g = (orig - rec)[valid], pred[i, 0].double().numpy()[valid]  # code values, /peak
    corr = float(np.corrcoef(t, g)[0, 1]) if t.std() > 0 and g.std() > 0 else 0.0
    gain = 10 * math.log10(max(mse_rec, 1e-12) / max(mse_filt, 1e-12))
    return {**p.meta[i], "mse_rec": mse_rec, "mse_filtered": mse_filt, "gain_db": gain,
            "corr": corr, "true_std": float(t.std()), "pred_std": float(g.std() * peak)}


# ----------------------------------------------------------------------------- entry point


def _check_inspect_args(out_dir: Path, data: list[str] | None, yuv: str | None,
                        orig: str | None, ctus: int, sample: int, maps: int,
                        overwrite: bool) -> None:
    """CodecnnError for a non-empty OUT (without overwrite) or an inconsistent choice of data."""
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise CodecnnError(f"{out_dir}: exists and is not empty (use --overwrite)")
    if bool(data) == bool(yuv):
        raise CodecnnError("give either --data SHARDS or --yuv REC --orig ORIG")
    if yuv and not orig:
        raise CodecnnError(f"{yuv}: give --orig ORIG too (the true residual needs it)")
    if ctus < 1 or sample < 1 or maps < 1:
        raise CodecnnError("--ctus, --sample and --maps must be >= 1")


def _load_patches(model: nn.Module, info: dict[str, Any], data: list[str] | None,
                  yuv: str | None, orig: str | None, size: tuple[int, int] | None,
                  bit_depth: int | None, qp: int | None, n: int) -> Patches:
    """n patches from the shards or the YUV pair, cut as the model expects; DataError where
    their border or bit depth is not the model's."""
    from codecnn.evaluate.model_io import check_bit_depth

    planes, border = tuple(model.config.planes), int(model.config.border)
    if data:
        p = patches_from_shards(list(data), planes, n)
    else:
        p = patches_from_yuv(yuv, orig, planes, n, border, size, bit_depth, qp)
    if p.border != border:
        raise DataError(f"{p.source.get('paths', [yuv])[0]}: patches have border {p.border}, "
                        f"the model {border}")
    check_bit_depth(info, p.source["bit_depth"], str((data or [yuv])[0]))
    return p


def _ctus_to_show(p: Patches, ctus: int) -> list[int]:
    """`ctus` sample indices spread over the sample, whole CTUs first (edge CTUs hold
    padding): from every CTU only when fewer than `ctus` are whole."""
    full = [i for i in range(len(p.meta)) if bool(p.valid[i].all())]
    pool = full if len(full) >= ctus else list(range(len(p.meta)))
    return [pool[i] for i in _spread(len(pool), ctus)]


def _plot_layers(p: Patches, shown: list[int], layers: list[str], moments: dict[str, _Moments],
                 captured: dict[str, torch.Tensor], stats: dict[str, dict[str, Any]],
                 rec: torch.Tensor, maps: int, out_dir: Path, steps: Any) -> dict[str, str]:
    """Write activations_<layer>.png per layer, noting the channels shown in `stats`;
    returns layer -> file name. `steps` (tqdm) counts one step per layer."""
    figures = {}
    for n in layers:
        path = out_dir / f"activations_{_slug(n)}.png"
        m = moments[n]
        shown_ch = plot_activations(n, captured[n], rec, [p.labels[i] for i in shown],
                                    m.channel_std(), stats[n]["dead_channels"], m.relu, maps,
                                    path)
        stats[n]["channels_shown"] = shown_ch
        figures[n] = path.name
        steps.update(1)
    return figures


def _write_layers_md(path: Path, model_ref: str, p: Patches, report: dict[str, Any],
                     stats: dict[str, dict[str, Any]]) -> None:
    """Write the per-layer statistics as a Markdown table under a short heading."""
    from codecnn.analysis.outputs import markdown_table
    from codecnn.io.atomic import write_text_atomic

    table = markdown_table(
        ["layer", "module", "shape", "mean", "std", "zeros", "dead ReLUs"],
        [[s["layer"], s["module"], "×".join(map(str, s["shape"])), s["mean"], s["std"],
          "—" if s["zero_fraction"] is None else f"{100 * s['zero_fraction']:.1f} %",
          "—" if s["dead_fraction"] is None else
          f"{100 * s['dead_fraction']:.1f} % ({len(s['dead_channels'])})"]
         for s in stats.values()])
    write_text_atomic(path, "\n".join([
        f"# Inside {model_ref}", "",
        f"{len(p.meta)} CTUs of {', '.join(p.source.get('paths') or [p.source.get('rec')])}; "
        f"mean CTU gain {report['sample_mean_ctu_gain_db']:+.4f} dB.", "",
        "Statistics over every CTU and position of the sample; for a convolution followed "
        "by a ReLU, of its output after the ReLU. Dead ReLU: a channel that is zero "
        "everywhere.", "", table]))


def inspect_model(model_ref: str, out_dir: str | Path, *, data: list[str] | None = None,
                  yuv: str | None = None, orig: str | None = None,
                  size: tuple[int, int] | None = None, bit_depth: int | None = None,
                  qp: int | None = None, layers: list[str] | None = None, ctus: int = 4,
                  sample: int = 64, maps: int = 8, overwrite: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Write OUT/inspect.json, layers.md, activations_*.png and residual.png (see above);
    returns the JSON report."""
    from tqdm import tqdm

    from codecnn.analysis.outputs import write_json
    from codecnn.evaluate.model_io import load_filter

    out_dir = Path(out_dir)
    _check_inspect_args(out_dir, data, yuv, orig, ctus, sample, maps, overwrite)
    model, info = load_filter(model_ref, "cpu")
    border = int(model.config.border)
    p = _load_patches(model, info, data, yuv, orig, size, bit_depth, qp, max(sample, ctus))
    layers = list(layers) if layers else default_layers(model)
    steps = tqdm(total=3 + len(layers), desc="inspect", unit="step", disable=None
                 if progress else True)
    moments, pred = layer_statistics(model, p.inputs, layers)
    steps.update(1)
    shown = _ctus_to_show(p, ctus)
    captured = capture(model, p.inputs[shown], layers)
    steps.update(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = p.inputs[shown, 0, border:border + 128, border:border + 128] * p.peak
    stats = {n: m.summary(n, type(dict(model.named_modules())[n]).__name__)
             for n, m in moments.items()}
    figures = _plot_layers(p, shown, layers, moments, captured, stats, rec, maps, out_dir,
                           steps)
    per_ctu = [ctu_stats(p, pred, i) for i in shown]
    plot_residuals(p, pred, shown, per_ctu, int(p.source["bit_depth"]),
                   out_dir / "residual.png")
    sample_gain = [ctu_stats(p, pred, i)["gain_db"] for i in range(len(p.meta))]
    report = {
        "model": info, "data": p.source, "sample": {"ctus": len(p.meta), "meta": p.meta},
        "sample_mean_ctu_gain_db": float(np.mean(sample_gain)),
        "layers_shown": layers, "figures": {"activations": figures, "residual": "residual.png"},
        "ctus_shown": per_ctu,
        "statistics": list(stats.values()),
        "statistics_note": "over every sample CTU and position; for a convolution followed "
                           "by a ReLU the output after it; dead = zero everywhere",
    }
    write_json(out_dir / "inspect.json", report)
    _write_layers_md(out_dir / "layers.md", model_ref, p, report, stats)
    steps.update(1)
    steps.close()
    report["out_dir"] = str(out_dir)
    return report
