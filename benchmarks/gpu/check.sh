#!/usr/bin/env bash
# The one prepared GPU check: at most 8 minutes on an H100 or H200, everything it measures under $OUT.
#   bash benchmarks/gpu/check.sh             # THERE, on the GPU machine, from the repository root, with the
#                                            # carried .whl/ dataset/ml-1m_clean dataset/beauty (and gpu-state/)
#   bash benchmarks/gpu/check.sh --dry-run   # HERE, on the CPU: the same steps, tiny, in under 3 minutes
# Steps: 1. the CUDA tests of every model (dry run: the CPU device guard in their place); 2. speed side by side
# (DiffRec and L-DiffRec against RecBole's DiffRec on ml-1m_clean, DiffuRec against SASRec on Beauty); 3. a
# long run in the time left (LONG_MODEL, default DiffuRec; SASRec for the second loan, and so on), resuming
# from gpu-state/ when an earlier loan left its snapshot there, and leaving the next one in $OUT/state/.
# docs/gpu.md lists the carried inputs (made by benchmarks/gpu/prepare_carry.sh) and what to do with $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-gpu-out}
BUDGET=${BUDGET:-450}  # seconds for the whole script (the loan's 8 minutes, less start-up)
LONG_MODEL=${LONG_MODEL:-DiffuRec}
mkdir -p "$OUT"
start=$SECONDS
if [ $DRY = 1 ]; then
  DEVICE=cpu; PY=${PYTHON:-python}; FLAGS=(--dry_run)
else
  DEVICE=cuda; PY=python3; FLAGS=()
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD PYTHONPYCACHEPREFIX=/tmp/pycache
fi
export PYTHONUNBUFFERED=1
{ $PY -c "import torch, recbole_diffrec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  [ $DEVICE = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  lscpu | grep -E "Model name"; } > "$OUT/machine.txt" 2>&1
echo "== 1. tests ($((SECONDS - start)) s)"
if [ $DRY = 1 ]; then
  timeout 180 $PY -m pytest -q -p no:cacheprovider tests/test_device_guard.py -k "DiffRec or GiffCF or guard" > "$OUT/tests.log" 2>&1
else
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/tests.log" 2>&1
fi
tail -n 3 "$OUT/tests.log"
echo "== 2. speed ($((SECONDS - start)) s)"
timeout $([ $DRY = 1 ] && echo 240 || echo 150) $PY benchmarks/gpu_check.py speed --device $DEVICE --out "$OUT" \
  --repeats $([ $DRY = 1 ] && echo 1 || echo 3) --batches $([ $DRY = 1 ] && echo 2 || echo 20) "${FLAGS[@]}" \
  > "$OUT/speed.log" 2>&1
tail -n 12 "$OUT/speed.md" 2>/dev/null || tail -n 5 "$OUT/speed.log"
left=$((BUDGET - (SECONDS - start) - 15))
[ $DRY = 1 ] && left=30  # the dry run checks that the step works, whatever the machine's load
echo "== 3. $LONG_MODEL for ${left} s ($((SECONDS - start)) s)"
if [ $left -gt 20 ]; then
  timeout $((left + 150)) $PY benchmarks/gpu_check.py long --device $DEVICE --model "$LONG_MODEL" --seconds $left \
    --eval_every $([ $DRY = 1 ] && echo 1 || echo 5) --state_in gpu-state --out "$OUT" "${FLAGS[@]}" > "$OUT/long.log" 2>&1
  grep -v "Warning\|warn" "$OUT/long.log" | tail -n 4
fi
echo "== done in $((SECONDS - start)) s; outputs in $OUT"
