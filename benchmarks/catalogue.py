"""A catalogue-heavy dataset (4,000 users over 94,949 items, benchmarks/synthetic.py --catalogue_heavy):
one training epoch and one full-sort evaluation of every user, for code trees side by side.

Each (tree, model, precision) runs in its own fresh process on one thread, one after the other, so the
trees see the same machine; a tree is a folder holding recbole_diffrec (the working tree, or a commit checked
out with `git worktree add`). Writes benchmarks/results/catalogue-<name>.md with the CPU's model and flags.

    git worktree add /tmp/base 8f8cac6
    python benchmarks/synthetic.py --out dataset --catalogue_heavy
    python benchmarks/catalogue.py --trees /tmp/base . --names 8f8cac6 now
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import cpu

REPO = Path(__file__).resolve().parent.parent
MODELS = {"DiffRec": {"dims_dnn": [1000]}, "LDiffRec": {"n_cate": 2, "in_dims": [300], "dims_dnn": [300]}}


def child(tree, model, precision, data_path, dataset="catalogue-synth", train=True, evaluate=True):
    sys.path.insert(0, str(Path(tree).resolve()))
    import torch

    torch.set_num_threads(1)
    from recbole_diffrec.pipeline import prepare
    settings = {"show_progress": False, "state": "WARNING", "data_path": data_path, "steps": 5, "epochs": 1,
                "train_batch_size": 400, "train_precision": precision, "checkpoint_dir": "/tmp/recbole-diffrec-cat",
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, **MODELS[model]}
    _, (train_data, _, test), net, trainer = prepare(model, dataset, None, settings)
    epoch = float("nan")
    if train:
        start = time.perf_counter()
        trainer._train_epoch(train_data, 0)
        epoch = time.perf_counter() - start
    evaluation, result = float("nan"), {"ndcg@10": float("nan")}
    if evaluate:
        start = time.perf_counter()
        result = trainer.evaluate(test, load_best_model=False)
        evaluation = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"epoch_s": epoch, "eval_s": evaluation, "peak_mb": peak, "batches": len(train_data),
                      "users": len(test.uid_list) if hasattr(test, "uid_list") else None,
                      "items": net.n_items, "ndcg@10": float(result["ndcg@10"])}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", default=[str(REPO)])
    parser.add_argument("--names", nargs="+", default=None)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["auto", "float32"])
    parser.add_argument("--data_path", default=str(REPO / "dataset"))
    parser.add_argument("--out", default="catalogue-cpu.md")
    parser.add_argument("--dataset", default="catalogue-synth", help="e.g. amazon-book-synth (synthetic.py)")
    parser.add_argument("--evaluation_only", action="store_true", help="time the full evaluation alone")
    parser.add_argument("--training_only", action="store_true", help="time the training epoch alone")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.data_path, args.dataset, not args.evaluation_only, not args.training_only)
    names = args.names or [Path(t).name for t in args.trees]
    rows = {}
    for model in args.models:
        for precision in args.precisions:
            for tree, name in zip(args.trees, names):
                command = [sys.executable, __file__, "--child", tree, model, precision, "--data_path", args.data_path,
                           "--dataset", args.dataset]
                command += ["--evaluation_only"] if args.evaluation_only else []
                command += ["--training_only"] if args.training_only else []
                proc = subprocess.run(command, capture_output=True, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
                if proc.returncode:
                    raise SystemExit(f"{name} {model} {precision} failed:\n{proc.stderr[-3000:]}")
                rows[model, precision, name] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(model, precision, name, rows[model, precision, name], flush=True)
    base = names[0]
    what = "one full evaluation" if args.evaluation_only else "one epoch and one full evaluation"
    flags = f" --dataset {args.dataset}" + (" --evaluation_only" if args.evaluation_only else "")
    lines = [f"# {args.dataset}: {what}, {' vs '.join(names)}", "",
             f"`python benchmarks/catalogue.py --trees {' '.join(args.trees)} --names {' '.join(names)}{flags}`; one thread, "
             f"each run a fresh process. CPU: {cpu()}.", "",
             "| model | precision | code | epoch s | vs " + base + " | full evaluation s | vs " + base
             + " | peak MB | test NDCG@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for (model, precision, name), r in rows.items():
        ref = rows[model, precision, base]
        ratio = "n/a" if r["epoch_s"] != r["epoch_s"] else f"{ref['epoch_s'] / r['epoch_s']:.2f}x"
        eval_ratio = "n/a" if r["eval_s"] != r["eval_s"] else f"{ref['eval_s'] / r['eval_s']:.2f}x"
        lines.append(f"| {model} | {precision} | {name} | {r['epoch_s']:.1f} | {ratio} | "
                     f"{r['eval_s']:.1f} | {eval_ratio} | {r['peak_mb']:.0f} | {r['ndcg@10']:.4f} |")
    first = next(iter(rows.values()))
    lines += ["", f"{first['items'] - 1:,} items (RecBole adds the padding id), {first['users']:,} users evaluated; "
              f"{first['batches']} training batches of 400 users; the models' settings: {MODELS}, steps 5."]
    out = REPO / "benchmarks" / "results" / args.out
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
