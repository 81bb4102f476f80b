import json, sys, os
tree = sys.argv[1]
sys.path.insert(0, tree)
os.chdir(sys.argv[2])
from recbole_diffrec.pipeline import run
out = {}
out["DiffRec"] = run("DiffRec", config_dict={"show_progress": False, "seed": 2020})["test_result"]
tiny = {"show_progress": False, "epochs": 2, "hidden_size": 32, "n_layers": 1, "n_heads": 2, "steps": 4,
        "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1, "eval_batch_size": 4096, "train_precision": "float32"}
out["DiffuRec"] = run("DiffuRec", config_dict=tiny)["test_result"]
dnr = {"show_progress": False, "epochs": 2, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 10,
       "inference_step": 4, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1, "train_precision": "float32"}
out["DNR"] = run("DNR", config_dict=dnr)["test_result"]
print("RESULT " + json.dumps(out))
