#!/usr/bin/env bash
# One prepared GPU check on one H100/H200, in two parts that each fit the device tool's
# 10-minute command limit (their step timeouts add up to 340 s and 440 s). From the
# repository root:
#
#     GPU_CHECK_PART=1 bash tools/gpu_check.sh [OUT]   # steps 1-2: benches (about 6 min)
#     GPU_CHECK_PART=2 bash tools/gpu_check.sh [OUT]   # steps 3-4: corpus, precision, zoo
#     bash tools/gpu_check.sh [OUT]                    # both (OUT: $OUT, else gpu_check_out)
#
# 1. bench_train on CUDA: eager fp32, channels_last, bf16 + channels_last, compiled
#    (idealised steps: data already on the device), rdn-s and rdn-cpu, and the real
#    training loop (train_model, loader included) at the same batch;
# 2. bench_infer on CUDA: ms per 1080p frame through TiledFilter, the same paths, compiled
#    and eager at the same batch;
# 3. the corpus without the wallpapers (not installable there: the machine reaches nothing),
#    then bench_precision: held-out gain per QP of zoo:rdn-vvc-ai, fp32 against bf16;
# 4. the zoo recipe through `codecnn zoo train` itself (the real loop, loader included), a
#    shortened run, with its held-out card;
# 5. prints every table for BENCHMARKS.md (and leaves them under OUT).
#
# The GPU machine's python3 has torch, h5py, numpy, matplotlib and click but not every
# dependency of codecnn. Put the missing ones as wheels in .whl/ first (see the device
# tool's README: pip download --only-binary=:all: --python-version 3.12 ...): hdf5plugin,
# scikit-image, scikit-video, imageio-ffmpeg, tqdm, tensorboard, bayesian-optimization,
# pillow-heif, and carry .whl. A CPU dry run of the plumbing: GPU_CHECK_DEVICE=cpu
# GPU_CHECK_STEPS=20 bash tools/gpu_check.sh /tmp/gc
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_check_out}}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEPS=${GPU_CHECK_STEPS:-3000}
WORK=${GPU_CHECK_WORK:-/tmp/codecnn_gpu_check}
PY=${PY:-python3}
PART=${GPU_CHECK_PART:-all}
part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
[ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=.venv/bin/python
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

step() { printf '\n## %s\n\n' "$*" | tee -a "$OUT/gpu_check.md"; }
[ "$PART" = 2 ] || : > "$OUT/gpu_check.md"
step "machine"
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; \
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'; \
} 2>&1 | tee -a "$OUT/gpu_check.md"

if part 1; then
step "training throughput (bench_train: idealised steps and the real loop, batch 64)"
timeout 240 $PY tools/bench_train.py --device "$DEVICE" --models rdn-s,rdn-cpu \
  $([ "$DEVICE" = cpu ] && echo "--steps 1 --batch-size 2 --loop-steps 4") 2>/dev/null \
  | tee -a "$OUT/gpu_check.md" || echo "bench_train failed or timed out" | tee -a "$OUT/gpu_check.md"

step "inference (bench_infer: ms per 1080p frame)"
timeout 100 $PY tools/bench_infer.py --device "$DEVICE" --models rdn-s rdn-cpu \
  $([ "$DEVICE" = cpu ] && echo "--ctus 1 --repeat 1") 2>/dev/null \
  | tee -a "$OUT/gpu_check.md" || echo "bench_infer failed or timed out" | tee -a "$OUT/gpu_check.md"
fi

if part 2; then
step "corpus (VVC All Intra, no wallpapers)"
timeout 150 $PY -m codecnn corpus -o "$WORK/corpus" --no-wallpapers -j "$(nproc)" 2>&1 \
  | tail -4 | tee -a "$OUT/gpu_check.md"

step "bf16 against fp32: held-out gain per QP (bench_precision, zoo:rdn-vvc-ai)"
timeout 90 $PY tools/bench_precision.py --device "$DEVICE" --model zoo:rdn-vvc-ai \
  --data "$WORK/corpus/vvc-ai/shards/heldout" --batch-size 64 \
  --per-group "$([ "$DEVICE" = cpu ] && echo 2 || echo 64)" 2>/dev/null \
  | tee -a "$OUT/gpu_check.md" || echo "bench_precision failed or timed out" | tee -a "$OUT/gpu_check.md"

step "zoo recipe rdn-vvc-ai through codecnn zoo train ($STEPS steps, $DEVICE)"
timeout 200 $PY -m codecnn zoo train rdn-vvc-ai --corpus "$WORK/corpus" -o "$WORK/zoo" \
  --steps "$STEPS" --device "$DEVICE" --no-wallpapers > "$OUT/zoo_train.log" 2>&1
echo "exit $?" | tee -a "$OUT/gpu_check.md"
$PY - "$WORK/zoo/rdn-vvc-ai" <<'EOF' 2>&1 | tee -a "$OUT/gpu_check.md"
import csv, json, sys
from pathlib import Path
d = Path(sys.argv[1])
rows = list(csv.DictReader(open(d / "run" / "train.csv")))
rates = [float(r["patches_per_s"]) for r in rows[len(rows) // 5:]]  # after warm-up
print(f"codecnn train (real loop): {sum(rates) / max(len(rates), 1):.0f} patches/s "
      f"({rows[-1]['step']} steps in {float(rows[-1]['elapsed_s']):.0f} s)")
card = d / "rdn-vvc-ai.json"
if card.is_file():
    c = json.loads(card.read_text())
    print("held-out gain per QP (always on / CTU switching):",
          ", ".join(f"QP {r['qp']} {r['gain_db']:+.3f}/{r['switch_gain_db']:+.3f}"
                    for r in c["heldout"]["per_qp"]),
          f"BD-rate {c['heldout']['bd_rate_pchip']}")
EOF
cp "$WORK/zoo/rdn-vvc-ai/rdn-vvc-ai.md" "$OUT/" 2>/dev/null
fi
echo
echo "tables: $OUT/gpu_check.md"
