#!/bin/bash
# SmolLM2 transmit at the paper's data size on a lent GPU machine (issue 8), in two calls of the
# workplace's device tool, because one call carries at most 64 MiB and SmolLM2's GGUF is 94 MiB.
# Prepared here (ignored by git, .git/info/exclude: /.dev/):
#   .dev/whl       transformers 5.24.0, peft 0.21.2, omegaconf 2.4.0, gguf 0.19.0 wheels (py3-none-any)
#   .dev/smol_tok  SmolLM2's tokenizer, chat template and config.json
#   .dev/smol_a    the GGUF's first 40 MiB; .dev/smol_b  the rest (head -c / tail -c)
# Call 1, carry [.dev/whl, .dev/smol_tok, .dev/smol_a]:  bash bench/gpu_smollm2.sh setup [--no-smoke]
#   installs the wheels, keeps part a in /tmp, runs bench/gpu_smoke.py (the pipeline on the GPU and
#   the timings that size the run).
# Call 2 within the machine's warm window, carry [.dev/smol_b]:  bash bench/gpu_smollm2.sh run SEEDS [key=value ...]
#   joins the GGUF, converts it once, runs SEEDS seeds of configs/transmit_smollm2_gpu.yaml as
#   parallel processes on the one GPU (students: SmolLM2 and its control; Gemma's 241 MiB GGUF
#   cannot travel), and merges them into $OUT/transmit_smollm2_gpu.json.
# 2026-11-26 (H200, 15 minutes of device time in all): setup took 70 s (smoke: docs/bench/gpu_h200_smoke.json);
# `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 bash bench/gpu_smollm2.sh run 5 student.steps=160` ran out of its 560 s
# while the control students trained: 5 parallel seeds took ~10 s per teacher, ~175 s per writer and
# ~110 s per student (docs/transmit_results/transmit_smollm2_gpu_incomplete.log). With the same
# lease, run setup without the smoke (the pipeline is proven) and 3 seeds, or fewer prompts.
# 2026-11-26, second lease: `setup --no-smoke` (18 s), then `run 3 text.batch=1024 compute.threads=4`
# finished in 381 s: no lift (docs/transmit_results/transmit_smollm2_gpu_seeds3.json, docs/real_models.md).
# A run that reuses the machine needs its own out_dir=/tmp/... (transmit refuses a dir of another config).
# Elsewhere, with the models installed, the run is just:
#   ECOSIM_DEVICE=cuda ecosim transmit --config configs/transmit_smollm2_gpu.yaml --seeds 5
set -u
GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled ECOSIM_DEVICE=cuda ECOSIM_CACHE=/tmp/ecache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"

case "${1:-}" in
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 1
  mkdir -p /tmp/smol && cp .dev/smol_a/part /tmp/smol/part_a || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())"
  [ "${2:-}" = "--no-smoke" ] || python3 bench/gpu_smoke.py --tok .dev/smol_tok --out "$OUT/smoke.json" 2>&1 | grep -v "Writing model shards"
  ;;
run)
  seeds=${2:?run SEEDS [key=value ...]}; shift 2
  [ -f /tmp/smol/part_a ] || { echo "part a is gone (the machine went cold): run setup again"; exit 3; }
  cat /tmp/smol/part_a .dev/smol_b/part > $GGUF
  echo "$SHA  $GGUF" | sha256sum -c - || exit 1
  t0=$(date +%s)
  python3 -c "from ecosim.substrates.hf import realmodels; realmodels.local_dir('$GGUF', log=print)" 2>&1 | grep -v "Writing model shards"
  echo "converted in $(( $(date +%s) - t0 )) s"
  for ((i = 0; i < seeds; i++)); do
    (python3 -m ecosim.cli transmit --config configs/transmit_smollm2_gpu.yaml --seeds 1 seed=$i base.model=$GGUF \
       "students=[control,student_same_base]" compute.threads=3 out_dir=/tmp/tw "$@" --json "$OUT/seed$i.json" 2>&1 \
       | grep --line-buffered -v "Writing model shards" | sed -u "s/^/[seed $i] /" >> "$OUT/log.txt") &
  done
  wait
  echo "seeds done in $(( $(date +%s) - t0 )) s"
  ls "$OUT"/seed*.json >/dev/null 2>&1 || { echo "no seed finished: see $OUT/log.txt"; tail -5 "$OUT/log.txt"; exit 1; }
  python3 -c "
import json, sys, glob
from ecosim.studies.transmit import merge, table
parts = [json.load(open(f)) for f in sorted(glob.glob('$OUT/seed*.json'))]
res = merge(parts)
json.dump(res, open('$OUT/transmit_smollm2_gpu.json', 'w'), indent=1)
print(len(parts), 'seeds'); print(table(res))"
  tail -5 "$OUT/log.txt"
  ;;
*) echo "usage: $0 setup | run SEEDS [key=value ...]"; exit 2 ;;
esac
