#!/usr/bin/env bash
# Run THERE, on the GPU machine, from the repository root, with .whl/ (fetch_wheels.sh) and
# dataset/ml-1m_clean carried. Everything it measures goes to $OUT (or ./gpu-out): the CUDA tests, the
# same-run speed table, the paper's protocol end to end (3 fresh processes) and fewer-step inference.
# STEPS picks a subset, e.g. STEPS="tests protocol" (default: tests speed protocol inference).
# STEPS=accuracy (not in the default: longer than one call) runs the 3-seed rows of issues #3 and #5 on the
# GPU, DiffRec and L-DiffRec with the paper's settings, to set beside the paper's code's H100 runs.
# STEPS=sequential (not in the default: hours; split it over calls with SEQ_DATASETS / SEQ_MODELS / SEQ_SEEDS,
# and SEQ_RESULTS=<a carried folder> to keep the rows of earlier calls: compare.py skips (model, seed) rows
# already in its CSV) trains every row of results/beauty.md to early stop on the full Beauty and ML-1M of
# DiffuRec's release; carry dataset/beauty and dataset/ml-1m-seq (made by recbole-diffrec convert, see
# dataset_configs/beauty.yaml and ml-1m-seq.yaml).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export PYTHONPYCACHEPREFIX=/tmp/pycache  # the copied tree may not take bytecode files; compile once, not per run
python3 -c "import torch, recbole_diffrec; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
python3 -m compileall -q recbole_diffrec benchmarks /tmp/site >/dev/null 2>&1
for step in ${STEPS:-tests speed protocol inference}; do
  case "$step" in
    tests) python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/tests.log" ;;
    speed) python3 benchmarks/speed.py --device cuda --epochs 10 --rounds 2 \
             --models recbole.DiffRec DiffRec DiffRec@bfloat16 TDiffRec LDiffRec 2>&1 | tail -n 40 | tee "$OUT/speed.log"
           cp benchmarks/results/speed-cuda.* "$OUT/" ;;
    protocol) python3 benchmarks/protocol.py --device cuda --models DiffRec recbole.DiffRec --repeats 3 \
                --workdir /tmp/protocol 2>&1 | tail -n 30 | tee "$OUT/protocol.log"
              cp benchmarks/results/protocol-cuda.md "$OUT/" ;;
    inference) python3 benchmarks/inference_steps.py --train 2>&1 | tail -n 20 | tee "$OUT/inference.log"
               cp benchmarks/results/inference_steps-cuda.md "$OUT/" ;;
    accuracy) python3 benchmarks/compare.py --dataset ml-1m_clean --config_files dataset_configs/ml-1m_clean.yaml \
                --models DiffRec LDiffRec@paper-emb LDiffRec --seeds 2020 2021 2022 --results_dir "$OUT/accuracy" \
                2>&1 | grep -v " epoch " | tail -n 40 | tee "$OUT/accuracy.log" ;;
    sequential)
      for d in ${SEQ_DATASETS:-beauty ml-1m-seq}; do
        paper=(); [ -f "benchmarks/configs/$d/paper.yaml" ] && paper=(--paper "benchmarks/configs/$d/paper.yaml")
        python3 benchmarks/compare.py --dataset "$d" --config_files "dataset_configs/$d.yaml" \
          --metrics hit@5 hit@10 hit@20 ndcg@5 ndcg@10 ndcg@20 --rank_by ndcg@10 "${paper[@]}" \
          --models ${SEQ_MODELS:-DiffuRec DNR SASRec GRU4Rec BERT4Rec Pop DiffRec TDiffRec} \
          --seeds ${SEQ_SEEDS:-2020 2021 2022} --results_dir "${SEQ_RESULTS:-$OUT/sequential}" --workdir "$PWD" \
          2>&1 | grep -v " epoch " | tail -n 60 | tee -a "$OUT/sequential.log"
      done
      [ -n "${SEQ_RESULTS:-}" ] && mkdir -p "$OUT/sequential" && cp -r "$SEQ_RESULTS"/. "$OUT/sequential/" ;;
    *) echo "unknown step $step" >&2 ;;
  esac
done
