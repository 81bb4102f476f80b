"""Side-by-side speed of recbole-diffrec's models and RecBole 1.2.1's built-in DiffRec.

One run, the same data and settings (the paper's ML-1M clean DiffRec settings; RecBole's dims_dnn
[600, 200, 600] gives it the same (n+10) -> 600 -> 200 -> 600 -> n MLP as the paper's dims [200, 600]).
Each (model, phase) runs in a fresh subprocess so its peak host memory is its own. Phases: a training
epoch (mean of --epochs, after one warm-up epoch), a full-sort evaluation of all validation users (after
one warm-up evaluation: the steady cost of each validation of a run). RecBole's DiffRec runs first in
every round, and the tables are rewritten after every row, so a run cut short still leaves same-run
ratios. Writes benchmarks/results/speed-<device>.{json,md} with the hardware and versions. The pseudo-model
"matmul-floor" times the denoiser's matrix products alone (no diffusion, no data): what no implementation
of the paper's model can go below on this hardware (in float32).

    python benchmarks/speed.py                        # needs dataset/ml-1m_clean (see README)
    python benchmarks/speed.py --models DiffRec recbole.DiffRec --device cuda
    python benchmarks/speed.py --models recbole.DiffRec DiffRec matmul-floor --epochs 1 --rounds 1
    python benchmarks/speed.py --models DiffRec DiffRec@ema0.995 --reference DiffRec --rounds 3 --out speed-cpu-ema
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import harness
REPO = Path(__file__).resolve().parent.parent
PAPER = [str(REPO / "dataset_configs" / "ml-1m_clean.yaml"),
         str(REPO / "dataset_configs" / "ml-1m_clean_diffrec_paper.yaml")]
BUILTIN = {  # RecBole's DiffRec keys for the same model; eval batch of 400 users (its default is 1 user)
    "dims_dnn": [600, 200, 600], "embedding_size": 10, "mlp_act_func": "tanh", "time-aware": False,
    "history_num_per_term": 10,
    "eval_batch_size": 400 * 2811,  # RecBole counts (user, item) pairs: 400 users of ML-1M clean's 2811 items
}


def matmul_floor(phase, device, epochs):
    """The cost of the denoiser's matrix products alone, as a lower bound for any implementation: the
    paper's MLP shapes (n_items + 10 -> 600 -> 200 -> 600 -> n_items, tanh) as a plain nn.Sequential on random
    dense input, no diffusion. train: ML-1M clean's 15 batches of 400 users, forward, squared error,
    backward, Adam. eval: 40 forward passes (the reverse chain's steps) over the 5,949 users."""
    import torch
    from torch import nn

    n_items, n_users, steps = 2811, 5949, 40
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(n_items + 10, 600), nn.Tanh(), nn.Linear(600, 200), nn.Tanh(),
                        nn.Linear(200, 600), nn.Tanh(), nn.Linear(600, n_items)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def train_epoch():
        for start in range(0, n_users, 400):
            x = torch.randn(min(400, n_users - start), n_items + 10, device=device)
            optimizer.zero_grad()
            loss = (net(x) - x[:, :n_items]).pow(2).mean()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def evaluate(batch=512):
        for start in range(0, n_users, batch):
            x = torch.randn(min(batch, n_users - start), n_items + 10, device=device)
            for _ in range(steps):
                x = torch.cat([net(x), x[:, n_items:]], 1)

    run = train_epoch if phase == "train" else evaluate
    run()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(epochs if phase == "train" else 1):
        run()
    sync()
    seconds = (time.perf_counter() - start) / (epochs if phase == "train" else 1)
    return {"model": "matmul-floor", "phase": phase, "seconds": seconds,
            "params": sum(p.numel() for p in net.parameters()),
            "peak_host_mb": harness.peak_host_mb(),
            **({"peak_device_mb": torch.cuda.max_memory_allocated() / 2**20} if device == "cuda" else {})}


def measure(model, phase, device, data_path, epochs=1):
    """Runs in the child: build everything, time one phase, return figures."""
    sys.path.insert(0, str(REPO))
    import torch

    if model == "matmul-floor":
        return matmul_floor(phase, device, epochs)

    from recbole_diffrec.pipeline import prepare

    overrides = {"show_progress": False, "use_gpu": device == "cuda", "data_path": data_path,
                 "checkpoint_dir": "/tmp/recbole-diffrec-bench", "state": "WARNING"}
    name, _, variant = model.partition("@")  # DiffRec@float32, DiffRec@ema0.995, DiffRec@bfloat16+ema0.999
    for part in filter(None, variant.split("+")):
        if part in ("float32", "bfloat16"):
            overrides["train_precision"] = part
        elif part.startswith("ema"):
            overrides["ema_decay"] = float(part[3:])
        else:
            raise SystemExit(f"unknown model variant {part!r} in {model!r}: float32, bfloat16 or ema<decay>")
    if name.startswith("recbole."):
        overrides.update(BUILTIN)
    if name == "LDiffRec":
        overrides.update({"noise_max": 0.02, "dims_dnn": [300], "learning_rate": 0.0005})
    config, (train, valid, _), net, trainer = prepare(name, "ml-1m_clean", PAPER, overrides)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    trainer._train_epoch(train, 0)  # warm-up (and the sampler's history fills)
    trainer.eval_collector.data_collect(train)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if phase == "train":
        for epoch in range(epochs):
            trainer._train_epoch(train, epoch + 1)
    else:
        trainer.evaluate(valid, load_best_model=False)  # warm-up, as the first validation of a run
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = trainer.evaluate(valid, load_best_model=False)
    sync()
    seconds = (time.perf_counter() - start) / (epochs if phase == "train" else 1)
    out = {"model": model, "phase": phase, "seconds": seconds,
           "params": sum(p.numel() for p in net.parameters()),
           "peak_host_mb": harness.peak_host_mb()}
    if device == "cuda":
        out["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if phase == "eval":
        out["valid_recall@20"] = float(result["recall@20"])
    return out


def hardware(device):
    import numpy
    import recbole
    import torch

    sys.path.insert(0, str(REPO))
    from recbole_diffrec.training.precision import native_cpu_bfloat16

    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "recbole": recbole.__version__, "cpu": harness.cpu(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_native_bfloat16": native_cpu_bfloat16()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+",
                        default=["recbole.DiffRec", "DiffRec", "DiffRec@float32", "TDiffRec", "LDiffRec"],
                        help="model names; NAME@float32 or NAME@bfloat16 pins one of ours to that training "
                             "precision (plain names use the default, train_precision: auto); NAME@ema0.995 "
                             "sets ema_decay; join variants with +, e.g. DiffRec@float32+ema0.995")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--data_path", default=str(REPO / "dataset"))
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (averaged)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure every (model, phase) this many times, interleaved, and keep the fastest "
                             "(robust to other load on the machine)")
    parser.add_argument("--reference", default="recbole.DiffRec",
                        help="the model the ratio column compares with (one of --models)")
    parser.add_argument("--out", default=None, help="file stem under benchmarks/results (default speed-<device>)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(*args.child, args.device, args.data_path, args.epochs)))
        return
    rows = []
    jobs = [(m, p) for _ in range(args.rounds) for m in args.models for p in ("train", "eval")]
    for model, phase in jobs:
        print(f"[{len(rows) + 1}/{len(jobs)}] {model} {phase} ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", model, phase, "--device", args.device,
                               "--data_path", args.data_path, "--epochs", str(args.epochs)],
                              capture_output=True, text=True, cwd="/tmp")
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{model} {phase} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(line[0][len("RESULT "):]))
        print("   ", rows[-1], flush=True)
        report(args, rows)
    print(report(args, rows))


def report(args, all_rows):
    """Write the json and md for the rows so far (fastest round per model and phase); return the md."""
    best = {}
    for r in all_rows:
        key = (r["model"], r["phase"])
        if key not in best or r["seconds"] < best[key]["seconds"]:
            best[key] = r
    rows = list(best.values())
    ref = {r["phase"]: r for r in rows if r["model"] == args.reference}
    cuda = args.device == "cuda"
    lines = [f"# Speed on {args.device}: ML-1M clean, the paper's DiffRec settings", "",
             f"Hardware and versions: `{json.dumps(hardware(args.device))}`", "",
             f"| model | phase | seconds | x faster than {args.reference} | params | peak host MB"
             + (" | peak device MB |" if cuda else " |"),
             "|---|---|---|---|---|---|" + ("---|" if cuda else "")]
    for r in rows:
        ratio = ref[r["phase"]]["seconds"] / r["seconds"] if r["phase"] in ref else float("nan")
        lines.append(f"| {r['model']} | {r['phase']} | {r['seconds']:.3f} | {ratio:.2f} | {r['params']:,} | "
                     f"{r['peak_host_mb']:.0f} |" + (f" {r['peak_device_mb']:.0f} |" if cuda else ""))
    lines += ["", "Command: `python benchmarks/speed.py " + shlex.join(sys.argv[1:]) + "`"]
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = args.out or f"speed-{args.device}"
    (out / f"{stem}.json").write_text(json.dumps({"hardware": hardware(args.device), "rows": rows},
                                                             indent=1))
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
