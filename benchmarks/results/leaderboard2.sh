#!/usr/bin/env bash
# The tuned baselines of results/ml-1m_clean.md added with GiffCF and FlowCF, after leaderboard.sh's GiffCF and
# T-GiffCF rows (one run at a time, one thread). Tuning budget, on validation Recall@20 (results/ml-1m_clean-tuning.md):
# SLIMElastic 4 settings, RecVAE 2, ADMMSLIM RecBole's defaults only.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
while pgrep -f "compare.py --models GiffCF TGiffCF" >/dev/null; do sleep 20; done
python benchmarks/compare.py --table ml-1m_clean-tuning --seeds 2020 \
  --models SLIMElastic SLIMElastic@alpha0.05 SLIMElastic@alpha0.5 SLIMElastic@l1-0.1 RecVAE RecVAE@lr5e-4 ADMMSLIM
