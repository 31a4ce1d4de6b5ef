"""Per-QP gain on HDF5 shards (held-out patches), without decoding anything again."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError
from codecnn.evaluate.tiling import default_batch
from codecnn.io.metrics import PsnrAccumulator, mean_of
from codecnn.io.shard import (
    META,
    ORIG,
    PLANES,
    REC,
    decode_name,
    normalise,
    open_shard,
    read_attrs,
)


def evaluate_shards(model, paths: list[Path], device: str = "cpu", batch: int | None = None,
                    dtype: str = "fp32", progress: bool = True) -> dict[str, Any]:
    """Scores the model on every patch of the shards.

    Each patch's residual is added to the centre of its rec and rounded/clipped as in
    whole-picture filtering; squared errors are summed over each patch's valid area and
    grouped per picture (sequence, nominal QP, POC): PSNR-Y per picture over the CTUs the
    shards hold, averaged over pictures, then sequences, per nominal QP (PsnrAccumulator).
    """
    import torch
    from tqdm import tqdm

    planes = tuple(model.config.planes)
    mb = int(model.config.border)
    model = model.to(device).eval()
    if batch is None:  # the rule whole-picture filtering uses (activations vs page faults)
        batch = default_batch(model, device)
    acc: PsnrAccumulator | None = None
    patches: dict[int, int] = defaultdict(int)
    bit_depth = None
    for path in paths:
        with open_shard(path) as f:
            attrs = read_attrs(f)
            bd, ctu, sb = int(attrs["bit_depth"]), int(f[ORIG].shape[-1]), int(attrs["border"])
            if bit_depth is not None and bd != bit_depth:
                raise DataError(f"{path}: {bd}-bit shard among {bit_depth}-bit shards")
            bit_depth = bd
            acc = acc or PsnrAccumulator(bd)
            for p in planes:  # each input plane is the shard's dataset of that name
                if p not in PLANES:
                    raise DataError(f"{path}: model asks for unknown input plane {p!r}")
                if p not in f:
                    raise DataError(f"{path}: model uses the {p} plane but the shard has no "
                                    f"{p} (model planes {', '.join(planes)})")
            if mb > sb:
                raise DataError(f"{path}: model needs a {mb}-sample border, shard has {sb}")
            crop = sb - mb
            peak = (1 << bd) - 1
            meta = f[META][:]
            n = len(meta)
            bar = tqdm(range(0, n, batch), desc=Path(path).name, unit="batch", file=sys.stderr,
                       disable=None if progress else True, leave=False)
            for s in bar:
                e = min(n, s + batch)
                stack = [f[p][s:e] for p in planes]
                x = np.stack(stack, 1).astype(np.float32)
                if crop:
                    x = x[..., crop:-crop, crop:-crop]
                rec = f[REC][s:e, sb:sb + ctu, sb:sb + ctu].astype(np.float32)
                orig = f[ORIG][s:e].astype(np.float32)
                with torch.inference_mode():
                    xt = normalise(torch.from_numpy(x).to(device), planes, peak)
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
                    acc.add(decode_name(m["sequence"]), int(m["nominal_qp"]), int(m["poc"]),
                            vw * vh, rec=float(((o - rec[j, :vh, :vw]) ** 2).sum()),
                            filt=float(((o - filt[j, :vh, :vw]) ** 2).sum()))
                    patches[int(m["nominal_qp"])] += 1
    if not acc:
        raise DataError(f"{paths[0]}: shards hold no patches")
    per_qp = [{"qp": r["qp"], "sequences": r["sequences"], "patches": patches[r["qp"]],
               "pictures": r["pictures"], "psnr_rec": r["psnr_rec"], "psnr_filt": r["psnr_filt"],
               "gain": r["gain"]} for r in acc.qp_rows()]
    return {"per_qp": per_qp, "overall": {"gain": mean_of([r["gain"] for r in per_qp])},
            "bit_depth": bit_depth}
