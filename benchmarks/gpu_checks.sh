#!/usr/bin/env bash
# Everything this project checks on a GPU, in one go (about 7 minutes on one H200):
# the CUDA tests, faceclip-tiny's pretraining time, and the method benchmarks of book/speed.md.
#   HF_HUB_OFFLINE=1 bash benchmarks/gpu_checks.sh [OUT_DIR]      (default: benchmarks/results/local)
# Weights are random throughout: no download, and timings do not depend on them.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/local}
mkdir -p "$out"
python=${PYTHON:-python}
methods="coop softcpt vpt vpt-ts vpt-ts:batched=false v2pt softcpt+vpt"
step() { echo "=== $(date +%T) $*"; }

step "CUDA tests"
$python -m pytest -q tests/test_gpu.py "tests/test_pretrain.py::test_augmentation_draws_the_same_crops_on_a_gpu"
step "faceclip-tiny's whole recipe on stand-in data"
$python benchmarks/bench_pretrain.py --device cuda --threads 8 --json "$out/pretrain_gpu.json"
step "inference, PE-Core B/16 and SigLIP2 B/16, bf16"
$python -m faceprompt bench --backbone pe-core-b16 --device cuda --dtype bf16 --methods $methods \
    --batch-sizes 1 64 256 --repeats 20 --warmup 3 --json "$out/bench_pe_core_b16.json"
# SigLIP2's tokenizer comes from the HF hub; with random weights a stand-in does for timing.
$python -m faceprompt bench --backbone siglip2-b16 --stand-in-tokenizer --device cuda --dtype bf16 \
    --methods $methods --batch-sizes 1 64 256 --repeats 20 --warmup 3 --json "$out/bench_siglip2_b16.json"
step "training on cached image features, PE-Core B/16"
$python -m faceprompt bench --backbone pe-core-b16 --device cuda --epoch-cache --images 512 \
    --batch-size 32 128 256 --json "$out/epoch_cache_pe_core_b16.json"
step "done: $out"
