#!/bin/bash
# Second device check: CUDA tests (graph attention's additive bias, the multicell memory changes), GPU frames/s by variant.
OUT=${OUT:-/tmp/gpuout}; mkdir -p $OUT
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/hrm . > /dev/null || exit 1
export PYTHONPATH=/tmp/hrm:/tmp/site
mkdir -p /tmp/t && cp -r tests pyproject.toml /tmp/t/ && cd /tmp/t
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests -k "cuda" -rs 2>&1 | tail -n 12 | tee $OUT/cuda_tests.log
python3 -m hrm_rl.bench ppo --device cuda --variants defaults graph bicross --iterations 4 --out $OUT/ppo_gpu.json 2>&1 | grep -v "frame/s" | tail -n 8
