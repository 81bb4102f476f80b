#!/usr/bin/env bash
# The baselines added with GiffCF and FlowCF, one run at a time on one thread, with the virtual environment's
# python. RecBole's RecVAE at its defaults took about 30 s an epoch here and was still improving at epoch 10,
# past what the session had left: it runs under a stated budget of 40 epochs (RecVAE@40epochs). SLIMElastic:
# its defaults (done), then two more alpha values, validation deciding (results/ml-1m_clean-tuning.md).
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python benchmarks/compare.py --seeds 2020 --models RecVAE@40epochs
for row in SLIMElastic@alpha0.05 SLIMElastic@alpha0.5 SLIMElastic@l1-0.1 ADMMSLIM; do
  python benchmarks/compare.py --table ml-1m_clean-tuning --seeds 2020 --models "$row"
done
