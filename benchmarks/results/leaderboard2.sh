#!/usr/bin/env bash
# The baselines added with GiffCF and FlowCF, one run at a time on one thread, with the virtual environment's
# python. Budget: RecBole's defaults for SLIMElastic and RecVAE first (rows of results/ml-1m_clean-tuning.md,
# validation decides), then the variants as time allows.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
for row in SLIMElastic RecVAE SLIMElastic@alpha0.05 RecVAE@lr5e-4 SLIMElastic@alpha0.5 SLIMElastic@l1-0.1 ADMMSLIM; do
  python benchmarks/compare.py --table ml-1m_clean-tuning --seeds 2020 --models "$row"
done
