#!/usr/bin/env bash
# The device checks, as one short script for a session that is lent a GPU (nvidia-smi present):
# the CUDA-vs-CPU test, the LASSO benchmark on the GPU at a size a CPU cannot do quickly, then
# bench_scale at the paper's m = 300,000 (test margins only: ~25 GB of disk).
#   bash bench/gpu_check.sh            (needs the project installed: see README)
set -uo pipefail
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU"; exit 1; }
python -m pytest -q -m gpu tests/fit/test_fit.py tests/fit/test_int8_rows.py
PYTHONUNBUFFERED=1 python bench/bench_fit.py --device cuda --sample 0 --m 20000 --d 2000 --n 1000
PYTHONUNBUFFERED=1 python bench/bench_fit.py --device cuda --sample 0 --m 100000 --d 10000 --n 5000
# the paper's scale on this one GPU (fit on cuda; peak device memory printed): m = 300,000, d = 50,000
PYTHONUNBUFFERED=1 python bench/bench_scale.py --m 300000 --d 50000 --targets 5000 --fit-targets 500 --no-train-margins
