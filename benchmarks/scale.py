"""Amazon-book scale on this machine: DiffRec (dims [1000]) vs L-DiffRec (n_cate 1, 2, 5; in_dims [300]; plain
k-means clusters as the paper, and equal-size clusters with balanced_clusters; one decoder over the whole latent
code, the default, and one per cluster with decoder per_cluster).

Parameters, peak host memory (and device memory on a GPU) and training time, each model in its own
subprocess. By default each times `--batches` training batches of 400 users and extrapolates the epoch
(labelled so); `--full_epoch` runs the whole epoch. Writes benchmarks/results/scale-<device>.md.

    python benchmarks/synthetic.py --out dataset && python benchmarks/scale.py
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import harness
REPO = Path(__file__).resolve().parent.parent
CASES = {
    "DiffRec dims [1000]": ("DiffRec", {"dims_dnn": [1000]}),
    "LDiffRec n_cate 1": ("LDiffRec", {"n_cate": 1, "item_emb_source": "none"}),
    "LDiffRec n_cate 2": ("LDiffRec", {"n_cate": 2}),
    "LDiffRec n_cate 5": ("LDiffRec", {"n_cate": 5}),
    "LDiffRec n_cate 2 balanced": ("LDiffRec", {"n_cate": 2, "balanced_clusters": True}),
    "LDiffRec n_cate 5 balanced": ("LDiffRec", {"n_cate": 5, "balanced_clusters": True}),
    "LDiffRec n_cate 2 per-cluster decoders": ("LDiffRec", {"n_cate": 2, "decoder": "per_cluster"}),
    "LDiffRec n_cate 5 per-cluster decoders": ("LDiffRec", {"n_cate": 5, "decoder": "per_cluster"}),
}


def child(case, device, batches, full_epoch, data_path):
    sys.path.insert(0, str(REPO))
    import torch

    from recbole_diffrec.pipeline import prepare

    model, extra = CASES[case]
    overrides = {"show_progress": False, "state": "WARNING", "data_path": data_path, "use_gpu": device == "cuda",
                 "train_batch_size": 400, "in_dims": [300], "checkpoint_dir": "/tmp/recbole-diffrec-scale",
                 "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, **extra}
    if model == "DiffRec":
        overrides.pop("in_dims")
    start = time.perf_counter()
    _, (train, _, _), net, trainer = prepare(model, "amazon-book-synth", None, overrides)
    setup_s, setup_peak = time.perf_counter() - start, harness.peak_host_mb()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net.train()
    timings = []
    for n, interaction in enumerate(train):
        if not full_epoch and n >= batches:
            break
        t0 = time.perf_counter()
        interaction = interaction.to(net.device)
        trainer.optimizer.zero_grad()
        net.calculate_loss(interaction).backward()
        trainer.optimizer.step()
        sync()
        timings.append(time.perf_counter() - t0)
    steady = timings[1:] or timings
    out = {"case": case, "params": sum(p.numel() for p in net.parameters()), "n_batches": len(train),
           "timed_batches": len(timings), "seconds_per_batch": sum(steady) / len(steady),
           "epoch_seconds": sum(timings) if full_epoch else sum(steady) / len(steady) * len(train),
           "epoch_extrapolated": not full_epoch, "setup_seconds": setup_s, "peak_host_mb_after_setup": setup_peak,
           "peak_host_mb": harness.peak_host_mb()}
    if device == "cuda":
        out["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--full_epoch", action="store_true")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--data_path", default=str(REPO / "dataset"))
    parser.add_argument("--out", default=None, help="file name under benchmarks/results (default scale-<device>.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.device, args.batches, args.full_epoch, args.data_path)))
        return
    rows = []
    for case in args.cases:
        print(f"{case} ...", flush=True)
        cmd = [sys.executable, __file__, "--child", case, "--device", args.device, "--batches", str(args.batches),
               "--data_path", args.data_path] + (["--full_epoch"] if args.full_epoch else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp")
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{case} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(line[0][7:]))
        print("   ", rows[-1], flush=True)
    if rows[0]["case"] != "DiffRec dims [1000]":
        sys.exit("the first case must be 'DiffRec dims [1000]' (the ratios are taken against it)")
    base = rows[0]["params"]
    lines = [f"# Amazon-book scale ({args.device}), generated data (benchmarks/synthetic.py)", "",
             "| model | params | params vs DiffRec | s / batch (400 users) | epoch s | peak host MB (setup) | peak host MB"
             + (" | peak device MB |" if args.device == "cuda" else " |"),
             "|---|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else "")]
    for r in rows:
        epoch = f"{r['epoch_seconds']:.0f}" + (" (extrapolated)" if r["epoch_extrapolated"] else "")
        lines.append(f"| {r['case']} | {r['params']:,} | {r['params'] / base:.3f} | {r['seconds_per_batch']:.2f} | "
                     f"{epoch} | {r['peak_host_mb_after_setup']:.0f} | {r['peak_host_mb']:.0f} |"
                     + (f" {r['peak_device_mb']:.0f} |" if args.device == "cuda" else ""))
    lines += ["", f"{rows[0]['n_batches']} batches per epoch; timed batches per model: {args.batches} "
              "(the first is excluded from the mean as warm-up)" if not args.full_epoch else "whole epochs timed",
              "", "Command: `python benchmarks/scale.py " + shlex.join(sys.argv[1:]) + "`"]
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / (args.out or f"scale-{args.device}.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
