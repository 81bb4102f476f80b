#!/usr/bin/env bash
# Run HERE before a GPU loan: makes every input benchmarks/gpu/check.sh carries (docs/gpu.md lists them):
# .whl/ (the pure-Python wheels the GPU machine's image lacks), dataset/ml-1m_clean and dataset/beauty
# (converted from ../shared/datasets). An earlier loan's $OUT/state, if any, goes to gpu-state/ by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash benchmarks/gpu/fetch_wheels.sh
[ -d dataset/ml-1m_clean ] || recbole-diffrec convert ../shared/datasets/ml-1m_clean --out dataset --name ml-1m_clean
[ -d dataset/beauty ] || recbole-diffrec convert ../shared/datasets/seq/beauty/beauty.txt --out dataset --name beauty
du -sh .whl dataset/ml-1m_clean dataset/beauty gpu-state 2>/dev/null || true
