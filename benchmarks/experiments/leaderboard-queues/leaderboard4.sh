#!/usr/bin/env bash
# The rows #35 still lacked after leaderboard.sh..3.sh, cheapest first, one run at a time on one thread (the other
# core runs the sensitivity study): T-FlowCF with and without weight averaging (3 seeds each), GiffCF's second and
# third seeds at the published settings, then T-GiffCF with weight averaging for as many seeds as the session allows.
set -u
cd "$(dirname "$0")/../.."
source .venv/bin/activate
export OMP_NUM_THREADS=1
python benchmarks/compare.py --models TFlowCF TFlowCF@ema0.995 --seeds 2020 2021 2022
python benchmarks/compare.py --models GiffCF --seeds 2021 2022
python benchmarks/compare.py --models TGiffCF@ema0.995 --seeds 2020 2021 2022
