#!/usr/bin/env python
"""Where does int8 lose the gain? One exported model, quantised five ways, each scored on
the same coded sequences by codecnn's own evaluate stage (the per-QP gain and BD-rate that
`codecnn eval --model FILE.onnx` reports):

- `int8`: what `codecnn export --int8` writes (every convolution, uint8 activations);
- `int8, float head`: the first convolution in float, so the 10-bit planes enter unquantised;
- `int8, float tail`: the last convolution in float, so the residual leaves unquantised;
- `int8, float head+tail`: both;
- `W8A16`: int8 weights with 16-bit activations everywhere.

    python tools/int8_ablation.py --model zoo:rdn-hevc-ai-depth \
        --calib /work/data/corpus/hevc-ai/shards/train \
        --measure /work/data/corpus/hevc-ai/coded/chelsea ... -o /tmp/int8_ablation

Writes OUT/ablation.md and OUT/ablation.json (and one eval report per variant).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _variants(convs: list[str]) -> dict[str, dict]:
    head, tail = convs[0], convs[-1]
    return {
        "int8": {},
        "int8, float head": {"keep_float": (head,)},
        "int8, float tail": {"keep_float": (tail,)},
        "int8, float head+tail": {"keep_float": (head, tail)},
        "W8A16": {"activation_bits": 16},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="zoo:rdn-hevc-ai-depth")
    ap.add_argument("--calib", required=True, action="append", help="training shards")
    ap.add_argument("--measure", required=True, action="append", help="coded sequences")
    ap.add_argument("--patches", type=int, default=64, help="calibration CTUs")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()

    from codecnn.evaluate import evaluate_manifests
    from codecnn.export.calib import read_patches
    from codecnn.export.deploy import export_model
    from codecnn.export.int8 import conv_nodes, quantise_int8
    from codecnn.export.to_onnx import normalise

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "model.onnx"
    info = export_model(args.model, fp32, args.calib, overwrite=True, progress=False)["model"]
    planes = tuple(info["planes"])
    raw, bit_depth = read_patches(args.calib, planes, info["border"], args.patches)
    x = normalise(raw, planes, bit_depth)

    rows = {}
    files = {"float": args.model, "ONNX fp32": str(fp32)}
    for i, (name, kw) in enumerate(_variants(conv_nodes(fp32)).items()):
        files[name] = str(out / f"variant{i}.onnx")
        quantise_int8(fp32, files[name], x, **kw)
    for i, (name, path) in enumerate(files.items()):
        rep = evaluate_manifests(path, args.measure, out / f"report{i}", overwrite=True,
                                 progress=False)
        s = rep["summary"]
        rows[name] = {"per_qp": {r["qp"]: r["gain"] for r in s["per_qp"]},
                      "bd_rate_pchip": s["overall"]["bd_rate_pchip"]}
        print(f"{name}: {rows[name]}", flush=True)

    qps = sorted(next(iter(rows.values()))["per_qp"])
    lines = ["| version | " + " | ".join(f"QP {q}" for q in qps) + " | BD-rate (PCHIP) |",
             "|---|" + "---:|" * (len(qps) + 1)]
    for name, r in rows.items():
        gains = " | ".join(f"{r['per_qp'][q]:+.4f}" for q in qps)
        lines.append(f"| {name} | {gains} | {r['bd_rate_pchip']:+.2f} % |")
    table = "\n".join(lines)
    (out / "ablation.md").write_text(table + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
