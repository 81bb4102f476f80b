"""The same metrics for the same seed from two trees of recbole-diffrec (issue 33: behaviour unchanged).

    OMP_NUM_THREADS=1 python same_metrics.py <tree> <workdir> [models...]

ml-100k, seed 2020: DiffRec with its defaults (train_precision auto: bfloat16 on a CPU with AVX512-BF16),
the sequential models with the tests' tiny settings (float32, 2 epochs), the newer general models for 2 epochs.
Prints one RESULT line of {model: test metrics}."""
import json
import os
import sys
from pathlib import Path

tree = sys.argv[1]
sys.path.insert(0, tree)
os.chdir(sys.argv[2])
from recbole_diffrec.pipeline import run  # noqa: E402

models = sys.argv[3:] or ["DiffRec", "DiffuRec", "DNR"]
# DNR's one-step prediction start was named inference_step before the rename
dnr_start = "inference_start" if "inference_start:" in (Path(tree) / "properties/DNR.yaml").read_text() else "inference_step"
short = {"show_progress": False, "epochs": 2, "eval_step": 1, "train_precision": "float32"}
settings = {
    "DiffRec": {"show_progress": False, "seed": 2020},
    "DiffuRec": {**short, "hidden_size": 32, "n_layers": 1, "n_heads": 2, "steps": 4, "MAX_ITEM_LIST_LENGTH": 10,
                 "train_batch_size": 2048, "eval_batch_size": 4096},
    "DNR": {**short, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 10, dnr_start: 4,
            "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048},
    "LDiffRec": {**short, "steps": 5},
    "GiffCF": {**short},
    "TGiffCF": {**short},
    "FlowCF": {**short},
}
out = {model: run(model, config_dict=settings[model])["test_result"] for model in models}
print("RESULT " + json.dumps(out))
