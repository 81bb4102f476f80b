#!/usr/bin/env bash
# The ml-1m_clean leaderboard rows added with GiffCF and FlowCF, one run at a time on one thread (the other
# core runs the sensitivity study). Each compare.py call skips (row, seed) pairs already in results/ml-1m_clean.csv.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python benchmarks/compare.py --models FlowCF --seeds 2020 2021 2022
python benchmarks/compare.py --models GiffCF TGiffCF --seeds 2020
python benchmarks/compare.py --models GiffCF TGiffCF --seeds 2021 2022
python benchmarks/compare.py --models TFlowCF TGiffCF@ema0.995 --seeds 2020 2021 2022
