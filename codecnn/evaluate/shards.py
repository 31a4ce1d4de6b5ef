"""Per-QP gain on HDF5 shards (held-out patches), without decoding anything again."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError
from codecnn.evaluate.tiling import PLANE_SCALE
from codecnn.io.metrics import mse_to_psnr
from codecnn.io.shard import DEPTH, META, ORIG, QP, REC, decode_name, open_shard, read_attrs

_DATASET = {"rec": REC, "qp": QP, "depth": DEPTH}


def evaluate_shards(model, paths: list[Path], device: str = "cpu", batch: int = 32,
                    dtype: str = "fp32", progress: bool = True) -> dict[str, Any]:
    """Scores the model on every patch of the shards.

    Each patch's residual is added to the centre of its rec and rounded/clipped as in
    whole-picture filtering; squared errors are summed over each patch's valid area and
    grouped per picture (sequence, nominal QP, POC): PSNR-Y per picture over the CTUs the
    shards hold, averaged over pictures, then sequences, per nominal QP.
    """
    import torch
    from tqdm import tqdm

    planes = tuple(model.config.planes)
    mb = int(model.config.border)
    model = model.to(device).eval()
    # (sequence, qp, poc) → [sse_rec, sse_filt, samples]
    pics: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    patches: dict[int, int] = defaultdict(int)
    bit_depth = None
    for path in paths:
        with open_shard(path) as f:
            attrs = read_attrs(f)
            bd, ctu, sb = int(attrs["bit_depth"]), int(f[ORIG].shape[-1]), int(attrs["border"])
            if bit_depth is not None and bd != bit_depth:
                raise DataError(f"{path}: {bd}-bit shard among {bit_depth}-bit shards")
            bit_depth = bd
            for p in planes:
                if p not in _DATASET:
                    raise DataError(f"{path}: model asks for unknown input plane {p!r}")
                if _DATASET[p] not in f:
                    raise DataError(f"{path}: model uses the {p} plane but the shard has no "
                                    f"{p} (model planes {', '.join(planes)})")
            if mb > sb:
                raise DataError(f"{path}: model needs a {mb}-sample border, shard has {sb}")
            crop = sb - mb
            peak = (1 << bd) - 1
            scale = torch.tensor([float(peak) if p == "rec" else PLANE_SCALE[p]
                                  for p in planes]).view(1, -1, 1, 1)
            meta = f[META][:]
            n = len(meta)
            bar = tqdm(range(0, n, batch), desc=Path(path).name, unit="batch", file=sys.stderr,
                       disable=None if progress else True, leave=False)
            for s in bar:
                e = min(n, s + batch)
                stack = [f[_DATASET[p]][s:e] for p in planes]
                x = np.stack(stack, 1).astype(np.float32)
                if crop:
                    x = x[..., crop:-crop, crop:-crop]
                rec = f[REC][s:e, sb:sb + ctu, sb:sb + ctu].astype(np.float32)
                orig = f[ORIG][s:e].astype(np.float32)
                with torch.inference_mode():
                    xt = torch.from_numpy(x).to(device) / scale.to(device)
                    if dtype == "bf16":
                        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                            res = model(xt)
                    else:
                        res = model(xt)
                    res = (res[:, 0].float() * peak).cpu().numpy()
                filt = np.clip(np.rint(rec + res), 0, peak)
                for j in range(e - s):
                    m = meta[s + j]
                    vw, vh = int(m["valid_w"]) or ctu, int(m["valid_h"]) or ctu
                    o = orig[j, :vh, :vw]
                    key = (decode_name(m["sequence"]), int(m["nominal_qp"]), int(m["poc"]))
                    acc = pics[key]
                    acc[0] += float(((o - rec[j, :vh, :vw]) ** 2).sum())
                    acc[1] += float(((o - filt[j, :vh, :vw]) ** 2).sum())
                    acc[2] += vw * vh
                    patches[int(m["nominal_qp"])] += 1
    if not pics:
        raise DataError(f"{paths[0]}: shards hold no patches")
    # picture → sequence → QP
    seq_rows: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for (seq, qp, _poc), (s_rec, s_filt, count) in pics.items():
        seq_rows[(qp, seq)].append((mse_to_psnr(s_rec / count, bit_depth),
                                    mse_to_psnr(s_filt / count, bit_depth)))
    per_qp = []
    for qp in sorted({qp for qp, _ in seq_rows}):
        seqs = [np.mean(v, axis=0) for (q, _), v in seq_rows.items() if q == qp]
        pr, pf = (float(np.mean([s[i] for s in seqs])) for i in (0, 1))
        per_qp.append({"qp": qp, "sequences": len(seqs), "patches": patches[qp],
                       "pictures": sum(len(v) for (q, _), v in seq_rows.items() if q == qp),
                       "psnr_rec": pr, "psnr_filt": pf, "gain": pf - pr})
    gains = [r["gain"] for r in per_qp]
    return {"per_qp": per_qp, "overall": {"gain": float(np.mean(gains))}, "bit_depth": bit_depth}
