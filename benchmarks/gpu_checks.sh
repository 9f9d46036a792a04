#!/usr/bin/env bash
# Everything this project measures on a GPU, in one go, within 10 minutes on one H200:
#   HF_HUB_OFFLINE=1 bash benchmarks/gpu_checks.sh [OUT_DIR]      (default: benchmarks/results/local)
# Weights are random throughout (no download; timings do not depend on them), bf16 autocast, 224 px B/16
# towers. Steps run in order of what the speed targets need; each has a time limit, and the whole run stops
# starting steps once its 10 minutes are spent (a skipped step says so). Each step writes its JSON to OUT_DIR:
#   cuda_tests         the CUDA tests (compiled and CUDA-graph paths included)
#   infer_*_eager      zero-shot and VPT, batch 1 and 256, eager
#   train_l14_eager    training steps of VPT on PE-Core L/14-336 at batch 64 against the bare tower's
#                      forward-backward (faceprompt bench --train)
#   infer_*_compiled   the same inference at batch 256 under torch.compile, and at batch 1 with CUDA graphs
#   train_l14_compiled the training steps compiled
#   methods_*          every method at batch 1, 64 and 256 (book/speed.md's table), when time is left,
#   epoch_cache_*, pretrain_gpu   then the cached-feature epoch and faceclip-tiny's pretraining time
# GPU_CHECKS_DRY_RUN=1 checks every command's arguments on the CPU without timing anything (the tests do).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/local}
mkdir -p "$out"
python=${PYTHON:-python}
dry=${GPU_CHECKS_DRY_RUN:-}
budget=${GPU_CHECKS_BUDGET_S:-590}
start=$(date +%s)
failed=0

# step NAME LIMIT_S COMMAND...: run COMMAND within LIMIT_S seconds and what is left of the budget.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - start)))
    if [ -n "$dry" ]; then
        echo "=== check $name"
        "$@" || { echo "!!! $name: bad arguments"; failed=1; }
        return
    fi
    if [ "$left" -lt 20 ]; then
        echo "=== skipped $name: the time budget is spent"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "=== $(date +%T) $name (limit ${limit} s)"
    timeout --signal=INT "$limit" "$@" || { echo "!!! $name: exit $? (124: out of time)"; failed=1; }
}

# bench ARGS...: `faceprompt bench` on CUDA in bf16, or its dry run.
bench() {
    if [ -n "$dry" ]; then
        $python -m faceprompt bench --device cuda --dtype bf16 "$@" --dry-run
    else
        $python -m faceprompt bench --device cuda --dtype bf16 "$@"
    fi
}

tests() {
    if [ -n "$dry" ]; then
        $python -m pytest -q --collect-only "$@" >/dev/null
    else
        $python -m pytest -q "$@"
    fi
}

siglip="--backbone siglip2-b16 --stand-in-tokenizer"  # its Gemma tokenizer comes from the HF hub
pe="--backbone pe-core-b16"
timing="--repeats 20 --warmup 3"

step cuda_tests 120 tests tests/test_gpu.py tests/test_speed.py \
    "tests/test_pretrain.py::test_augmentation_draws_the_same_crops_on_a_gpu"
step infer_pe_core_b16_eager 60 bench $pe --methods vpt --batch-sizes 1 256 $timing \
    --json "$out/infer_pe_core_b16_eager.json"
step infer_siglip2_b16_eager 60 bench $siglip --methods vpt --batch-sizes 1 256 $timing \
    --json "$out/infer_siglip2_b16_eager.json"
step train_l14_eager 90 bench --train --backbone pe-core-l14-336 --methods vpt --batch-size 64 \
    --repeats 10 --warmup 2 --json "$out/train_l14_eager.json"
step infer_pe_core_b16_compiled 100 bench $pe --methods vpt --batch-sizes 256 $timing --compile \
    --json "$out/infer_pe_core_b16_compiled.json"
step infer_siglip2_b16_compiled 100 bench $siglip --methods vpt --batch-sizes 256 $timing --compile \
    --json "$out/infer_siglip2_b16_compiled.json"
step infer_pe_core_b16_graphs 80 bench $pe --methods vpt --batch-sizes 1 $timing --compile reduce-overhead \
    --json "$out/infer_pe_core_b16_graphs.json"
step infer_siglip2_b16_graphs 80 bench $siglip --methods vpt --batch-sizes 1 $timing --compile reduce-overhead \
    --json "$out/infer_siglip2_b16_graphs.json"
step train_l14_compiled 120 bench --train --backbone pe-core-l14-336 --methods vpt --batch-size 64 \
    --repeats 10 --warmup 3 --compile --json "$out/train_l14_compiled.json"
methods="coop softcpt vpt vpt-ts vpt-ts:batched=false v2pt softcpt+vpt"
step methods_pe_core_b16 90 bench $pe --methods $methods --batch-sizes 1 64 256 $timing \
    --json "$out/bench_pe_core_b16.json"
step methods_siglip2_b16 90 bench $siglip --methods $methods --batch-sizes 1 64 256 $timing \
    --json "$out/bench_siglip2_b16.json"
step epoch_cache_pe_core_b16 60 bench --backbone pe-core-b16 --epoch-cache --images 512 --batch-size 32 128 256 \
    --dtype fp32 --json "$out/epoch_cache_pe_core_b16.json"
if [ -n "$dry" ]; then
    step pretrain_gpu 10 $python benchmarks/bench_pretrain.py --help
else
    step pretrain_gpu 150 $python benchmarks/bench_pretrain.py --device cuda --threads 8 --json "$out/pretrain_gpu.json"
fi
echo "=== done in $(($(date +%s) - start)) s: $out"
exit $failed
