#!/bin/bash
# SmolLM2 on a lent GPU machine: transmit at the paper's data size (issue 8) and the published
# small-model recipes (issue 20), in calls of the workplace's device tool. One call carries at most
# 64 MiB with the working tree (20 MiB in 2026-12), and SmolLM2's GGUF is 94 MiB: it travels in
# parts that each call keeps in /tmp/smol (`stash`), joined and checked (sha256) before a run.
# Prepared here (ignored by git, .git/info/exclude: /.dev/):
#   .dev/whl       transformers 5.24.0, peft 0.21.2, omegaconf 2.4.0, gguf 0.19.0 wheels (py3-none-any;
#                  5.25 needs a huggingface_hub newer than the machine's 1.33)
#   .dev/smol_tok  SmolLM2's tokenizer, chat template and config.json (a converted GGUF's directory)
#   .dev/smol_a, smol_b, smol_c   the GGUF's bytes 0-26,000,000, the next 44,000,000, the rest
#                  (head -c / tail -c; with the 20 MiB tree each call stays under 64 MiB)
# Call 1, carry [.dev/whl, .dev/smol_tok, .dev/smol_a]:  bash bench/gpu_smollm2.sh setup [--no-smoke | smoke ARGS]
#   installs the wheels, keeps part a, runs bench/gpu_smoke.py ARGS (the pipeline on the GPU and
#   the timings that size the run; --recipes adds both recipes' code paths and a full-FT step).
# Call 2 at once (the machine goes back after 30 s idle), carry [.dev/smol_b]:  bash bench/gpu_smollm2.sh stash
# Call 3 at once, carry [.dev/smol_c]:  bash bench/gpu_smollm2.sh run SEEDS [key=value ...]
#   joins the GGUF, converts it once, runs SEEDS seeds of configs/transmit_smollm2_gpu.yaml as
#   parallel processes on the one GPU (students: SmolLM2 and its control; Gemma's 241 MiB GGUF
#   cannot travel), and merges them into $OUT/transmit_smollm2_gpu.json;
# or:  [LIMIT=s FULL_SIZE="k=v ..." CONS_SIZE="k=v ..." FULL_FIRST=i CONS_FIRST=i] bash bench/gpu_smollm2.sh recipes SEEDS
#   the same for configs/recipe_full_ft.yaml (its teacher answering in sentences) and
#   configs/recipe_constrained_lora.yaml, SEEDS seeds of each at once (from seed FULL_FIRST and
#   CONS_FIRST, 0 unless set), each process cut at LIMIT s;
#   $OUT/runs_NAME.tgz holds each seed's run directory without weights (bench/seed_questions.py
#   reads its records: the lift per question; `ecosim transmit --config ... --from-runs DIRS` here
#   makes their table, e.g. docs/runs/recipe_constrained_lora/h200_8192).
# 2026-11-26 (H200, 15 minutes of device time in all; 40/54 MiB parts then): setup took 70 s (smoke: docs/bench/gpu_h200_smoke.json);
# `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 bash bench/gpu_smollm2.sh run 5 student.steps=160` ran out of its 560 s
# while the control students trained: 5 parallel seeds took ~10 s per teacher, ~175 s per writer and
# ~110 s per student (docs/transmit_results/transmit_smollm2_gpu_incomplete.log). With the same
# lease, run setup without the smoke (the pipeline is proven) and 3 seeds, or fewer prompts.
# 2026-11-26, second lease: `setup --no-smoke` (18 s), then `run 3 text.batch=1024 compute.threads=4`
# finished in 381 s: no lift (docs/transmit_results/transmit_smollm2_gpu_seeds3.json, docs/real_models.md).
# 2026-12-04 (issue 20): `setup smoke --recipes --batch 1024 --max-new 32 --train-batch 16 --steps 10
# --teach-steps 150` (103 s; docs/bench/gpu_h200_smoke_recipes.json: LoRA 180 ms and full 129 ms a
# step of 16), `stash`, then `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 LIMIT=480 FULL_SIZE="prompts=10000
# train_size=3000 student.steps=560" CONS_SIZE="prompts=8192 train_size=8192 student.steps=512"
# bash bench/gpu_smollm2.sh recipes 3` (511 s): recipe_full_ft's 3 seeds finished (256-418 s each),
# recipe_constrained_lora's did not write their 8,192 lists in the 455 s left to them
# (docs/transmit_results/recipe_full_ft_gpu_seeds3.json and .log; docs/results.md).
# 2026-12-04, a fourth lease: `setup --no-smoke` (22 s), `stash`, then `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1
# LIMIT=550 FULL_FIRST=3 FULL_SIZE="prompts=10000 train_size=3000 student.steps=560" CONS_SIZE="prompts=8192
# train_size=8192 student.steps=512" bash bench/gpu_smollm2.sh recipes 3` (589 s; 656 s held in all): the
# constrained seeds and full-FT seeds 4-5 finished, seed 3 did not (docs/results.md, "Both recipes on a
# fourth lease").
# The same lease's last 240 s, carrying [.dev/whl, .dev/smol_tok]: `setup --no-smoke`, then
# bench/gpu_step_profile.py as the verb `profile` now runs it (62 s; docs/bench/gpu_h200_step_profile.log):
# a full step of 16 is 112 ms in fp32, 3,927 kernel launches, 70.5 ms of it GPU time.
# Next lease: `profile` first (carry [.dev/whl, .dev/smol_tok]; after setup). It now also times full
# and LoRA steps with each decoder layer compiled, as `compute.compile_layers` trains (on this CPU a
# LoRA update with eager attention is 23% faster so, docs/real_models.md; a GPU's step, bound by
# launches, may gain more: not measured).
# If they are faster there, add compute.compile_layers=on to FULL_SIZE and CONS_SIZE for `recipes`.
# A run that reuses the machine needs its own out_dir=/tmp/... (transmit refuses a dir of another config).
# Elsewhere, with the models installed, the run is just:
#   ECOSIM_DEVICE=cuda ecosim transmit --config configs/transmit_smollm2_gpu.yaml --seeds 5
set -u
# keep whatever part of the GGUF this call carried (.dev/smol_a, _b, _c ...) in /tmp/smol; join them
stash() { mkdir -p /tmp/smol; for d in .dev/smol_?; do [ -f "$d/part" ] && cp "$d/part" "/tmp/smol/part_${d##*_}"; done; true; }
join() { cat /tmp/smol/part_? > $GGUF && echo "$SHA  $GGUF" | sha256sum -c -; }
GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled ECOSIM_DEVICE=cuda ECOSIM_CACHE=/tmp/ecache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
# the joined GGUF converted once into $ECOSIM_CACHE, before the seeds start side by side
prepare() {
  join || { ls -la /tmp/smol; echo "a part is missing (the machine went cold?): run setup again"; exit 3; }
  t0=$(date +%s)
  python3 -c "from ecosim.substrates.hf import realmodels; realmodels.local_dir('$GGUF', log=print)" 2>&1 | grep -v "Writing model shards"
  echo "converted in $(( $(date +%s) - t0 )) s"
}
# one seed in the background: seed LABEL I JSON [cmd ...]: runs cmd, its output into $OUT/log.txt as [LABEL I]
seed() {
  local label=$1 i=$2 json=$3; shift 3
  ("$@" seed=$i base.model=$GGUF --json "$json" 2>&1 | grep --line-buffered -v "Writing model shards" \
     | sed -u "s/^/[$label $i] /" >> "$OUT/log.txt") &
}
# the seeds' JSONs (a glob) merged into one with its table: merge GLOB OUT_JSON; fails when none finished
merge() {
  python3 -c "
import json, sys, glob
from ecosim.studies.transmit import merge, table
parts = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1]))]
print(sys.argv[2], ':', len(parts), 'seeds finished')
if not parts:
    sys.exit(1)
res = merge(parts)
json.dump(res, open(sys.argv[2], 'w'), indent=1)
print(table(res))" "$1" "$2"
}

stash
case "${1:-}" in
stash) ls -la /tmp/smol ;;
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())"
  [ "${2:-}" = "--no-smoke" ] || python3 bench/gpu_smoke.py --tok .dev/smol_tok --out "$OUT/smoke.json" "${@:3}" 2>&1 | grep -v "Writing model shards"
  ;;
run)
  seeds=${2:?run SEEDS [key=value ...]}; shift 2
  prepare
  for ((i = 0; i < seeds; i++)); do
    seed seed $i "$OUT/seed$i.json" python3 -m ecosim.cli transmit --config configs/transmit_smollm2_gpu.yaml --seeds 1 \
      "students=[control,student_same_base]" compute.threads=3 out_dir=/tmp/tw "$@"
  done
  wait
  echo "seeds done in $(( $(date +%s) - t0 )) s"
  merge "$OUT/seed*.json" "$OUT/transmit_smollm2_gpu.json" || { echo "no seed finished: see $OUT/log.txt"; tail -5 "$OUT/log.txt"; exit 1; }
  tail -5 "$OUT/log.txt"
  ;;
recipes)
  # the two published small-model recipes (configs/recipe_full_ft.yaml with the teacher that answers
  # in sentences, configs/recipe_constrained_lora.yaml), SEEDS seeds of each, all as parallel
  # processes on the one GPU; each process is cut at LIMIT seconds and the seeds that finished are
  # merged into $OUT/recipe_NAME_gpu.json. Sizes: FULL_SIZE and CONS_SIZE (key=value ...).
  seeds=${2:?recipes SEEDS}; limit=${LIMIT:-480}
  prepare
  FULL="teacher.answers=sentence teacher.check_every=4 teacher.task_share=0.5 ${FULL_SIZE:-prompts=32000 train_size=10000 student.steps=1875}"
  CONS="${CONS_SIZE:-prompts=8192 train_size=8192 student.steps=5120}"
  for name in recipe_full_ft recipe_constrained_lora; do
    [ $name = recipe_full_ft ] && { extra=$FULL; first=${FULL_FIRST:-0}; } || { extra=$CONS; first=${CONS_FIRST:-0}; }
    echo "$name: seeds $first-$((first + seeds - 1)): $extra"
    for ((i = first; i < first + seeds; i++)); do
      seed $name $i "$OUT/part_${name}_$i.json" timeout $limit python3 -m ecosim.cli transmit --config configs/$name.yaml \
        --seeds 1 base.autocast=off text.batch=1024 compute.threads=2 out_dir=/tmp/$name $extra
    done
  done
  wait
  echo "recipes done in $(( $(date +%s) - t0 )) s"
  for name in recipe_full_ft recipe_constrained_lora; do
    merge "$OUT/part_${name}_*.json" "$OUT/${name}_gpu.json"
  done
  rm -f "$OUT"/part_*.json
  for name in recipe_full_ft recipe_constrained_lora; do  # each seed's records (per question), no weights
    (cd /tmp/$name 2>/dev/null && tar czf "$OUT/runs_$name.tgz" --ignore-failed-read \
       seed*/config.yaml seed*/digests.json seed*/graph.json seed*/metrics.csv seed*/run.json seed*/versions.json seed*/records \
       2>/dev/null)
  done
  grep -E "took|kept|seconds| s$" "$OUT/log.txt" | tail -40
  ;;
profile)
  # where a training step of SmolLM2's shape goes (random weights: no GGUF needed; after setup)
  python3 bench/gpu_step_profile.py --tok .dev/smol_tok --out "$OUT/step_profile.json" "${@:2}" 2>&1 | grep -v "Writing model shards"
  ;;
*) echo "usage: $0 setup | stash | run SEEDS [key=value ...] | recipes SEEDS | profile"; exit 2 ;;
esac
