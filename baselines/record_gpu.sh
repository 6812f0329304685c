#!/usr/bin/env bash
# The first GPU figures (issue "Feed a GPU"): on the real-resolution Kvasir stand-in, the throughput
# command, then the full FastViT-T8 recipe for a few epochs with Lightning in 32-true, bf16-mixed and
# 16-mixed and with Poutyne in bf16-mixed, then EfficientNetV2-B2 at 260 px. Random weights: the
# machine reaches no hub, and a generated file would pass random numbers off as pretrained ones.
#
#   bash baselines/record_gpu.sh OUT_DIR
#
# Then the smoke EfficientNetV2 bf16 cases over 3 seeds (a CPU without bf16 units cannot run them),
# throughput with --compile --fused-optimizer, and the overhead benchmarks in the full profile (each
# engine against a plain loop; per-epoch checkpoints to a folder and a GCS emulator). PARTS picks
# among "figures smoke compile overhead" (default: all, in that order; the stand-in is made first
# whenever it is missing). Writes OUT_DIR/log.txt, throughput*.json, overhead.json, gpu.csv
# (utilisation sampled every 0.5 s), records.tar.gz (the full-profile records, ready for
# baselines/<gpu-name>/, refreshed after each step) and smoke.tar.gz.
# Each step is bounded, a failed one does not stop the next, and a step that would end after
# BUDGET_S seconds is skipped. PER_CLASS, EPOCHS, OVERHEAD_EPOCHS (2: a warm-up and a steady one,
# of 87 batches each), BUDGET_S, EXTRA (run options appended to every command, so they win), WORK
# (scratch folder) and PYTHON override.
set -u
out=${1:?give the folder the figures go to}
per_class=${PER_CLASS:-500}
epochs=${EPOCHS:-3}
budget=${BUDGET_S:-540}
extra=${EXTRA:-}
parts=" ${PARTS:-figures smoke compile overhead} "
work=${WORK:-/tmp/trainbench-gpu}
mkdir -p "$out" "$work"
exec > >(tee "$out/log.txt") 2>&1
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
common=(--results-dir "$work/results" --cache-dir "$work/cache" --wandb off)
split=(--split 0.7,0.2,0.1)  # FastViT: Kvasir's 5564/1600/832 of 8000, as fractions of the stand-in (EfficientNetV2 keeps its 70/15/15)

step() {  # step SECONDS NAME COMMAND...: time one bounded step; a failure is printed, not fatal
  local limit=$1 name=$2; shift 2
  if ((SECONDS + limit > budget)); then
    echo "=== $name: skipped, ${limit} s would overrun the ${budget} s budget at ${SECONDS} s"
    return
  fi
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - start)) s"
  [[ -d $work/results ]] && tar -czf "$out/records.tar.gz" -C "$work/results" --exclude='*.pt' --exclude='*.ckpt' .
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$py -c "import torch, timm, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'lightning', lightning.__version__, 'cpus', len(__import__('os').sched_getaffinity(0)))"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 >"$out/gpu.csv" &
sampler=$!

if [[ $parts == *" figures "* || $parts == *" compile "* ]] && [[ ! -d $work/standin/kvasir-dataset-v2 ]]; then
  step 90 "stand-in, $per_class per class" $py -m harness kvasir-standin --out "$work/standin" --per-class "$per_class"
fi
if [[ $parts == *" figures "* ]]; then
step 120 "throughput, FastViT full recipe, bf16-mixed" $py -m harness throughput --recipe fastvit --profile full --data "$work/standin/kvasir-dataset-v2" "${split[@]}" --precision bf16-mixed --json "$out/throughput.json" "${common[@]}" $extra
for precision in bf16-mixed 16-mixed 32-true; do
  step 90 "FastViT Lightning $precision" $py -m harness run --recipe fastvit --profile full --data-root "$work/standin" "${split[@]}" --weights random --epochs "$epochs" --precision "$precision" "${common[@]}" $extra
done
step 90 "FastViT Poutyne bf16-mixed" $py -m harness run --recipe fastvit --profile full --engine poutyne --data-root "$work/standin" "${split[@]}" --weights random --epochs "$epochs" --precision bf16-mixed "${common[@]}" $extra
step 90 "EfficientNetV2-B2 260 px Poutyne bf16-mixed" $py -m harness run --recipe efficientnetv2 --profile full --data "$work/standin/kvasir-dataset-v2" --weights random --epochs "$epochs" --precision bf16-mixed "${common[@]}" $extra
fi
[[ $parts == *" smoke "* ]] && step 180 "smoke EfficientNetV2 bf16-mixed, 3 seeds" $py -m pytest benchmarks/test_efficientnetv2.py -k bf16 --seeds 3 --results-dir "$work/smoke" --cache-dir "$work/cache" --wandb off -p no:cacheprovider -q
[[ -d $work/smoke ]] && tar -czf "$out/smoke.tar.gz" -C "$work/smoke" .
[[ $parts == *" compile "* ]] && step 150 "throughput with --compile --fused-optimizer" $py -m harness throughput --recipe fastvit --profile full --data "$work/standin/kvasir-dataset-v2" "${split[@]}" --precision bf16-mixed --compile --fused-optimizer --json "$out/throughput-compiled.json" "${common[@]}" $extra
if [[ $parts == *" overhead "* ]]; then  # the benchmarks keep each recipe's split, and FastViT's counts need Kvasir's 8000 images
  [[ -d $work/standin-8000/kvasir-dataset-v2 ]] || step 150 "stand-in, 1000 per class" $py -m harness kvasir-standin --out "$work/standin-8000" --per-class 1000
  step 480 "overhead: engines against a plain loop, checkpoints to a bucket, full profile" \
    $py -m pytest benchmarks/test_engine_parity.py benchmarks/test_checkpoint_overhead.py --profile full --data-root "$work/standin-8000/kvasir-dataset-v2" \
    --epochs "${OVERHEAD_EPOCHS:-2}" --results-dir "$work/overhead" --cache-dir "$work/cache" --wandb off --benchmark-json "$out/overhead.json" -p no:cacheprovider -q -s
fi

kill "$sampler"
$py -m harness report "$work/results"  # summary.md, summary.csv, report.html beside the records
tar -czf "$out/records.tar.gz" -C "$work/results" --exclude='*.pt' --exclude='*.ckpt' .
