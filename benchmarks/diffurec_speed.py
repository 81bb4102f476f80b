"""The sequential models' training step and evaluation on Beauty, side by side: recbole-diffrec's DiffuRec
against the published DiffuRec code, and DNR and RecBole's SASRec beside them.

Times `--batches` training batches of 512 examples (after one warm-up batch) for recbole-diffrec's DiffuRec and
DNR (train_precision auto and float32), RecBole's SASRec (cross-entropy, float32, as RecBole trains it) and the
published model (a scratch copy; its Adam step included, as its trainer does), each in a fresh process on one
thread, and the evaluation of one batch of 512 users (DiffuRec: the full reverse chain from noise, 32 steps;
DNR: one step from its inference step; SASRec: one pass; then scores over every item). An epoch and a full
evaluation are these times multiplied by the batches of Beauty (22,363 users). Writes
benchmarks/results/diffurec-speed-cpu.md.

    python benchmarks/diffurec_speed.py --official /tmp/diffurec_official/src
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import cpu, native_bfloat16

REPO = Path(__file__).resolve().parent.parent


def child(kind, official_src, batches):
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    from diffurec_fidelity import left_padded, official_model
    from recbole_diffrec.pipeline import prepare

    torch.set_num_threads(1)
    model_name, precision = ("DiffuRec", "float32") if kind == "published" else kind.split("-")
    overrides = {"show_progress": False, "state": "WARNING", "data_path": str(REPO / "dataset"),
                 "checkpoint_dir": "/tmp/recbole-diffrec-speed", "train_batch_size": 512, "eval_batch_size": 512}
    if model_name == "SASRec":
        overrides.update(loss_type="CE", train_neg_sample_args=None)
    else:
        overrides["train_precision"] = precision
    config, (train, _, test), ours, trainer = prepare(
        model_name, "beauty", [str(REPO / "dataset_configs" / "beauty.yaml")], overrides)
    loader = iter(train)
    examples = [next(loader) for _ in range(batches + 1)]
    if kind == "published":
        tokens = train._dataset.field2id_token["item_id"]
        model = official_model(official_src, len(tokens) - 1,
                               {**ours.settings, "MAX_ITEM_LIST_LENGTH": config["MAX_ITEM_LIST_LENGTH"]})
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        token_of = torch.tensor([0] + [int(t) for t in tokens[1:]])
        batches_in = [(left_padded(token_of[b["item_id_list"]], b["item_length"]), token_of[b["item_id"]].unsqueeze(-1))
                      for b in examples]

        def step(batch):
            optimizer.zero_grad()
            _, rep, _, _, _, _ = model(batch[0], batch[1], train_flag=True)
            model.loss_diffu_ce(rep, batch[1]).backward()
            optimizer.step()

        def evaluate(batch):
            with torch.no_grad():
                _, rep, _, _, _, _ = model(batch[0], batch[1], train_flag=False)
                model.diffu_rep_pre(rep)
        model.train()
    else:
        batches_in = examples

        def step(batch):
            trainer.optimizer.zero_grad()
            dtype = getattr(trainer, "autocast_dtype", None)
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = ours.calculate_loss(batch)
            loss.backward()
            trainer.optimizer.step()

        def evaluate(batch):
            with torch.no_grad():
                ours.full_sort_predict(batch)
        ours.train()
    step(batches_in[0])
    start = time.perf_counter()
    for batch in batches_in[1:]:
        step(batch)
    train_s = (time.perf_counter() - start) / batches
    (model if kind == "published" else ours).eval()
    start = time.perf_counter()
    evaluate(batches_in[1])
    eval_s = time.perf_counter() - start
    print(json.dumps({"step_s": train_s, "eval_batch_s": eval_s, "batches_per_epoch": len(train),
                      "users": test._dataset.user_num - 1}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=["published", "DiffuRec-float32", "DiffuRec-auto",
                                                        "DNR-float32", "DNR-auto", "SASRec-float32"],
                        help="published, or <model>-<train_precision> of DiffuRec, DNR or SASRec")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.official, args.batches)
    rows = {}
    for kind in args.kinds:
        proc = subprocess.run([sys.executable, __file__, "--official", args.official, "--batches", str(args.batches),
                               "--child", kind], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        if proc.returncode:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        rows[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(kind, rows[kind], flush=True)
    base = rows["published"]
    lines = ["# Sequential models on Beauty: a training step and an evaluation batch, side by side", "",
             f"`python benchmarks/diffurec_speed.py --official <scratch copy>/src --batches {args.batches}`; one "
             "thread, each a fresh process, batches of 512 (training examples; users for the evaluation). "
             "Evaluation: DiffuRec runs the reverse chain from noise over 32 steps, DNR one step from its "
             "inference step, SASRec one pass; then scores over every item. Epoch and full evaluation: these "
             "times multiplied by Beauty's batches. CPU: " + cpu() + ".", "",
             "| code | model | precision | s per training batch | vs published | s per evaluation batch | "
             "vs published | epoch | full evaluation |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        model, precision = ("DiffuRec", "float32") if kind == "published" else kind.split("-")
        code = "published DiffuRec" if kind == "published" else "RecBole" if model == "SASRec" else "recbole-diffrec"
        if precision == "auto":
            precision = f"auto ({'bfloat16' if native_bfloat16() else 'float32'} here)"
        eval_batches = -(-r["users"] // 512)
        lines.append(f"| {code} | {model} | {precision} | {r['step_s']:.2f} | {base['step_s'] / r['step_s']:.2f}x | "
                     f"{r['eval_batch_s']:.2f} | {base['eval_batch_s'] / r['eval_batch_s']:.2f}x | "
                     f"{r['step_s'] * r['batches_per_epoch'] / 60:.1f} min | "
                     f"{r['eval_batch_s'] * eval_batches / 60:.1f} min |")
    out = REPO / "benchmarks" / "results" / "diffurec-speed-cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
