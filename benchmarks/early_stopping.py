"""What early-stopping rule picks which epoch: one training run per (model, seed), every rule replayed on it.

Each run trains a table row's settings (benchmarks/configs/<dataset>/<Model>.yaml, as compare.py) with a
long patience and records, at every validation, the validation metrics and the test metrics of the weights
at that moment. Training and validation consume the same random numbers whatever the patience (the
validation draws none), so a shorter rule's run is a prefix of this one: replaying a rule over the
records gives exactly the epoch it would pick, and that epoch's test metrics, without training again.

Rules replayed: RecBole's (a validation score >= the best so far replaces it and resets the count; training
stops when the count exceeds `stopping_step`) for several `stopping_step`, and the paper's code's (a
validation every 5 epochs; only a strictly better score replaces the best; training stops once 20
epochs have passed since the best, i.e. after 3 validations without a strict improvement).

benchmarks/results/early_stopping/ came from two processes side by side (one thread each), then a merge:

    python benchmarks/early_stopping.py --models DiffRec --seeds 2020 2021 2022 2023 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-a.jsonl
    python benchmarks/early_stopping.py --models TDiffRec --records benchmarks/results/early_stopping/records-a.jsonl
    python benchmarks/early_stopping.py --models LDiffRec LDiffRec@paper-emb LTDiffRec \
        --records benchmarks/results/early_stopping/records-b.jsonl
    python benchmarks/early_stopping.py --models LDiffRec@paper-emb --seeds 2023 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-c.jsonl
    python benchmarks/early_stopping.py --models LDiffRec --seeds 2023 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-d.jsonl
    python benchmarks/early_stopping.py --models TDiffRec --seeds 2023 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-e.jsonl
    python benchmarks/early_stopping.py --models LTDiffRec --seeds 2023 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-f.jsonl
    python benchmarks/early_stopping.py --models DiffRec@lr2.5e-4-noise0.01 --seeds 2020 2021 2022 2023 \
        --records benchmarks/results/early_stopping/records-g.jsonl
    python benchmarks/early_stopping.py --models DiffRec@lr2.5e-4-noise0.01 --seeds 2024 2025 2026 2027 \
        --records benchmarks/results/early_stopping/records-h.jsonl
    python benchmarks/early_stopping.py --report_only \
        --records benchmarks/results/early_stopping/records-{a,b,c,d,e,f,g,h}.jsonl
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from compare import METRICS, model_settings  # noqa: E402  (the side-by-side table's metrics and row settings)

RECORDED_PATIENCE = 8  # validations without improvement before a recording run stops (>= every rule's)


def record_run(label, seed, dataset, config_files, max_epochs):
    """Train one row's settings; return its per-validation records (valid and test metrics)."""
    from recbole_diffrec.pipeline import prepare

    overrides = {**model_settings(dataset, label), "seed": seed, "show_progress": False, "state": "WARNING",
                 "epochs": max_epochs, "stopping_step": RECORDED_PATIENCE}
    config, (train, valid, test), _, trainer = prepare(label.split("@")[0], dataset, config_files, overrides)
    records = []
    validate = trainer._valid_epoch

    def valid_and_test(valid_data, show_progress=False):
        score, result = validate(valid_data, show_progress=show_progress)
        tested = trainer.evaluate(test, load_best_model=False)  # the weights as they are now
        records.append({"valid": {m: float(v) for m, v in result.items()},
                        "test": {m: float(v) for m, v in tested.items()}})
        return score, result

    trainer._valid_epoch = valid_and_test
    start = time.perf_counter()
    trainer.fit(train, valid, saved=False, show_progress=False)
    return {"model": label, "seed": seed, "eval_step": config["eval_step"], "max_epochs": max_epochs,
            "valid_metric": config["valid_metric"].lower(),
            "epochs_trained": len(trainer.train_loss_dict), "seconds": time.perf_counter() - start,
            "settings": overrides, "records": records}


def recbole_rule(scores, stopping_step):
    """RecBole's early_stopping over validation scores: (index picked, index it stops at or None)."""
    best, count, pick = float("-inf"), 0, None
    for i, score in enumerate(scores):
        if score >= best:
            best, count, pick = score, 0, i
        else:
            count += 1
            if count > stopping_step:
                return pick, i
    return pick, None


def paper_rule(scores, eval_step=5, patience_epochs=20):
    """The paper's code: strict improvements only; stop once `patience_epochs` have passed since the best
    (checked before each epoch trains, so the validation at best + patience_epochs never happens)."""
    best, pick = float("-inf"), None
    for i, score in enumerate(scores):
        if pick is not None and (i - pick) * eval_step >= patience_epochs:
            return pick, i - 1
        if score > best:
            best, pick = score, i
    return pick, None


RULES = {
    "RecBole, stopping_step 4 (the table's)": lambda s, e: recbole_rule(s, 4),
    "RecBole, stopping_step 3": lambda s, e: recbole_rule(s, 3),
    "RecBole, stopping_step 2": lambda s, e: recbole_rule(s, 2),
    "the paper's code (20 epochs, strict)": lambda s, e: paper_rule(s, e),
}
PAPER = "the paper's code (20 epochs, strict)"


def replay(run, rule, strict=True):
    """(picked record, epoch picked, epoch of the rule's last validation). A rule that has not stopped when
    the record reached its epoch limit picks what a run with that limit would; `strict` refuses that
    (the table's runs had a far higher limit)."""
    scores = [r["valid"][run["valid_metric"]] for r in run["records"]]
    pick, stop = rule(scores, run["eval_step"])
    if strict and stop is None and run["epochs_trained"] >= run["max_epochs"]:
        raise ValueError(f"{run['model']} seed {run['seed']}: the rule had not stopped by epoch {run['max_epochs']}; "
                         "record with more --epochs")
    stop = len(scores) - 1 if stop is None else stop
    return run["records"][pick], (pick + 1) * run["eval_step"], (stop + 1) * run["eval_step"]


def report(runs):
    import numpy as np

    lines = ["# Early stopping: which epoch each rule picks, on the same training runs", "",
             "Produced by `benchmarks/early_stopping.py` (see its docstring): one run per (model, seed) with the "
             "table's settings and a long patience, the validation and test metrics recorded at every "
             "validation (every 5 epochs), every rule replayed over the records. Test metrics are those of "
             "the epoch a rule picks on the validation metric (Recall@20 in the paper's protocol); means over "
             "seeds.", ""]
    for model in dict.fromkeys(r["model"] for r in runs):
        mine = sorted((r for r in runs if r["model"] == model), key=lambda r: r["seed"])
        lines += [f"## {model}", "", f"Seeds {', '.join(str(r['seed']) for r in mine)}.", "",
                  "| rule | valid (selection metric) | test R@10 | test R@20 | test N@10 | test N@20 "
                  "| epoch picked | last validation |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, rule in RULES.items():
            replays = [replay(r, rule) for r in mine]
            valid = np.mean([rec["valid"][mine[0]["valid_metric"]] for rec, _, _ in replays])
            test = [np.mean([rec["test"][m] for rec, _, _ in replays]) for m in METRICS]
            picked = ", ".join(str(p) for _, p, _ in replays)
            last = ", ".join(str(s) for _, _, s in replays)
            cells = " | ".join(f"{v:.4f}" for v in test)
            lines.append(f"| {name} | {valid:.4f} | {cells} | {picked} | {last} |")
        same = sum(replay(r, RULES["RecBole, stopping_step 2"])[1] == replay(r, RULES[PAPER])[1] for r in mine)
        lines += ["", "The paper's code's rule and RecBole's stopping_step 2 (whose picks can differ only where a "
                      f"validation equals the best score) pick the same epoch in {same} of {len(mine)} runs.", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--config_files", nargs="+", default=None)
    parser.add_argument("--models", nargs="+", default=["DiffRec", "LDiffRec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=400, help="the recording runs' epoch limit")
    parser.add_argument("--records", nargs="+", default=[str(REPO / "benchmarks/results/early_stopping/records.jsonl")],
                        help="JSON-lines record files: the first is appended to; all are read for the report")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/early_stopping/README.md"))
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args()
    config_files = args.config_files or [str(REPO / "dataset_configs" / f"{args.dataset}.yaml")]
    target = Path(args.records[0])
    if not args.report_only:
        target.parent.mkdir(parents=True, exist_ok=True)
        for model in args.models:
            for seed in args.seeds:
                print(f"{model} seed {seed} ...", flush=True)
                run = record_run(model, seed, args.dataset, config_files, args.epochs)
                with open(target, "a") as handle:
                    handle.write(json.dumps(run) + "\n")
                print(f"    {run['epochs_trained']} epochs, {run['seconds']:.0f} s", flush=True)
    runs = [json.loads(line) for path in args.records for line in open(path) if line.strip()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(runs) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
