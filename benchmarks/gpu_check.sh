#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): under 8 minutes on one GPU; on a machine without one it runs
# its CPU fallback. From the repository root: bash benchmarks/gpu_check.sh [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python benchmarks/gpu_check.py "$@"
