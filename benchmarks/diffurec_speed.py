"""DiffuRec's training step on Beauty: recbole-diffrec's against the published code's, side by side.

Times `--batches` training batches of 512 examples (after one warm-up batch) for recbole-diffrec's DiffuRec
(train_precision auto and float32) and the published model (a scratch copy; its Adam step included, as its
trainer does), each in a fresh process on one thread, and the evaluation of one batch of 512 users (the full
reverse chain from noise, 32 steps, scores over every item). Writes benchmarks/results/diffurec-speed-cpu.md.

    python benchmarks/diffurec_speed.py --official /tmp/diffurec_official/src
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child(kind, official_src, batches):
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    from diffurec_fidelity import left_padded, official_model
    from recbole_diffrec.pipeline import prepare

    torch.set_num_threads(1)
    precision = "float32" if kind != "ours-auto" else "auto"
    config, (train, _, test), ours, trainer = prepare(
        "DiffuRec", "beauty", [str(REPO / "dataset_configs" / "beauty.yaml")],
        {"show_progress": False, "state": "WARNING", "data_path": str(REPO / "dataset"), "train_precision": precision,
         "checkpoint_dir": "/tmp/recbole-diffrec-speed"})
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
            with torch.autocast("cpu", dtype=trainer.autocast_dtype or torch.float32,
                                enabled=trainer.autocast_dtype is not None):
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
    print(json.dumps({"step_s": train_s, "eval_batch_s": eval_s, "batches_per_epoch": len(train)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.official, args.batches)
    rows = {}
    for kind in ("published", "ours-float32", "ours-auto"):
        proc = subprocess.run([sys.executable, __file__, "--official", args.official, "--batches", str(args.batches),
                               "--child", kind], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        if proc.returncode:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        rows[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(kind, rows[kind], flush=True)
    base = rows["published"]
    lines = ["# DiffuRec on Beauty: a training step and an evaluation batch, recbole-diffrec vs the published code", "",
             f"`python benchmarks/diffurec_speed.py --official <scratch copy>/src --batches {args.batches}`; one thread, "
             "each a fresh process, batches of 512 (training examples; users for the evaluation: the reverse chain "
             "from noise over 32 steps, then scores over every item). CPU: AMD EPYC, avx2 avx512f avx512_bf16.", "",
             "| code | precision | s per training batch | vs published | s per evaluation batch | vs published | "
             "epoch (batches x step) |", "|---|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        precision = "float32" if kind != "ours-auto" else "auto (bfloat16 here)"
        lines.append(f"| {'published' if kind == 'published' else 'recbole-diffrec'} | {precision} | {r['step_s']:.2f} | "
                     f"{base['step_s'] / r['step_s']:.2f}x | {r['eval_batch_s']:.2f} | "
                     f"{base['eval_batch_s'] / r['eval_batch_s']:.2f}x | {r['step_s'] * r['batches_per_epoch'] / 60:.0f} min |")
    out = REPO / "benchmarks" / "results" / "diffurec-speed-cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
