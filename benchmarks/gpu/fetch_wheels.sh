#!/usr/bin/env bash
# Run HERE (this machine reaches PyPI; the GPU machine reaches nothing): fetches into .whl/ the pure-Python
# packages that recbole-diffrec needs and the GPU machine's image lacks (its image has torch, numpy, scipy,
# pandas, scikit-learn, pyyaml, tqdm, tensorboard, tabulate, psutil, colorama, networkx, cloudpickle).
# Then call the device tool's run with carry [".whl", "dataset/ml-1m_clean"] and the command
#   bash benchmarks/gpu/run_checks.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
git check-ignore -q .whl || { exclude=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$exclude")"; echo '/.whl/' >> "$exclude"; }
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d .whl \
  recbole==1.2.1 colorlog==4.7.2 texttable==1.7.0 hyperopt==0.2.7 py4j==0.10.9.9 future==1.0.0
ls .whl
