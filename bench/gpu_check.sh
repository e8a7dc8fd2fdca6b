#!/usr/bin/env bash
# The device checks, as one short script for a session that is lent a GPU (nvidia-smi present):
# the CUDA-vs-CPU test, then the LASSO benchmark on the GPU at a size a CPU cannot do quickly.
#   bash bench/gpu_check.sh            (needs the project installed: see README)
set -uo pipefail
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU"; exit 1; }
python -m pytest -q -m gpu tests/test_fit.py
PYTHONUNBUFFERED=1 python bench/bench_fit.py --device cuda --sample 0 --m 20000 --d 2000 --n 1000
PYTHONUNBUFFERED=1 python bench/bench_fit.py --device cuda --sample 0 --m 100000 --d 10000 --n 5000
