#!/bin/bash
# One device check (issue 16): CUDA tests incl. graph attention, then two short GPU trainings side by side:
# 9x9 Sudoku (graph attention, B=1024) and 30x30 Maze (graph attention, curriculum mix, B=256).
# usage: bash .devdata/gpu.sh MINUTES [DEVICE]
M=${1:-3.5}; DEV=${2:-cuda}; OUT=${OUT:-/tmp/gpuout}; mkdir -p $OUT
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
if [ "$DEV" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/hrm . > /dev/null || exit 1
  export PYTHONPATH=/tmp/hrm:/tmp/site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
REPO=$PWD; mkdir -p /tmp/t && cp -r tests pyproject.toml /tmp/t/ && cp -r .devdata /tmp/t/ && cd /tmp/t  # not the repo root: its hrm_rl/ would shadow the installed package
python3 -c "import torch, torchrl, tensordict, hrm_rl; print('torch', torch.__version__, 'torchrl', torchrl.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/models/test_hrm.py tests/models/test_layers.py \
  tests/envs/test_batched.py tests/envs/test_augment.py tests/envs/test_curriculum.py -k cuda -rs 2>&1 | tail -n 15 | tee $OUT/cuda_tests.log
S="python3 -m hrm_rl.train device=$DEV logger=csv checkpoint.every=100000000 model.attention=graph model.pos_encoding=rope2d time_budget.minutes=$M"
(
  $S agent=ppo env=sudoku batch_size=1024 eval.every=100000000 hydra.run.dir=/tmp/gpu_sudoku > $OUT/sudoku.log 2>&1
  for f in easy50.txt kaggle_format_test1000.csv; do
    python3 -m hrm_rl.evaluate checkpoint=/tmp/gpu_sudoku/checkpoint.pt data=.devdata/$f attempts=1 device=$DEV 2>&1 | grep -v "it/s\]" | tail -n 4 >> $OUT/sudoku.log
  done
  cp /tmp/gpu_sudoku/metrics.csv $OUT/sudoku_metrics.csv
) &
(
  $S agent=ppo env=maze model.L_layers=3 model.H_layers=3 agent.lr=1e-3 env.curriculum.mode=mix batch_size=256 \
     eval.every=100000000 eval.num_puzzles=200 hydra.run.dir=/tmp/gpu_maze > $OUT/maze.log 2>&1
  python3 -m hrm_rl.evaluate checkpoint=/tmp/gpu_maze/checkpoint.pt data=.devdata/maze30_hard_sample50.csv attempts=1 device=$DEV 2>&1 | grep -v "it/s\]" | tail -n 4 >> $OUT/maze.log
  cp /tmp/gpu_maze/metrics.csv $OUT/maze_metrics.csv
) &
wait
nvidia-smi --query-gpu=memory.used --format=csv 2>/dev/null
tail -n 6 $OUT/sudoku.log $OUT/maze.log
