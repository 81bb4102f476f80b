"""Wall time of the paper's whole protocol, start to finish, split into phases.

The speed issue asks for the paper's protocol on ML-1M clean (train to early stop, then test) in under
15 s of wall time on an H100. This script runs it `--repeats` times, each in a fresh Python process as a
user would (`python run_recbole.py ...` does the same work), and records when each phase ends, measured
from the moment the parent started the process:

    imports   interpreter start and `import recbole_diffrec` (torch, RecBole, pandas, scikit-learn)
    prepare   config, dataset, loaders, model, trainer
    fit       training to early stop, with the validations
    test      the best checkpoint reloaded and tested
    exit      until the process has ended

    python benchmarks/protocol.py --repeats 3                 # needs dataset/ml-1m_clean (see README)
    python benchmarks/protocol.py --models DiffRec recbole.DiffRec --repeats 1   # side by side
    python benchmarks/protocol.py --device cuda --repeats 3
    python benchmarks/protocol.py --dataset ml-100k --config_files "" --set epochs=5   # a quick check

RecBole's built-in DiffRec (`recbole.DiffRec`) gets the same MLP and evaluation batch as in `speed.py`.
Runs of several models are interleaved (model after model in every repeat). Writes
benchmarks/results/protocol-<device>.md (or --out) with the hardware and versions.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

import harness
REPO = Path(__file__).resolve().parent.parent
PAPER = " ".join(str(REPO / "dataset_configs" / name)
                 for name in ("ml-1m_clean.yaml", "ml-1m_clean_diffrec_paper.yaml"))
PHASES = ["imports", "prepare", "fit", "test", "exit"]

# The child: wall-clock stamps (time.time(), comparable with the parent's) after each phase, as JSON.
CHILD = """
import json, sys, time
stamps = {}
from recbole_diffrec.pipeline import prepare
stamps["imports"] = time.time()
config, (train, valid, test), model, trainer = prepare(*json.loads(sys.argv[1]))
stamps["prepare"] = time.time()
trainer.fit(train, valid, saved=True, show_progress=False)
stamps["fit"] = time.time()
result = trainer.evaluate(test, load_best_model=True, show_progress=False)
stamps["test"] = time.time()
print("PROTOCOL " + json.dumps({"stamps": stamps, "test": {k: float(v) for k, v in result.items()}}), flush=True)
"""


def run_once(model, dataset, config_files, overrides, workdir):
    args = json.dumps([model, dataset, config_files, overrides])
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, args], cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    end = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"the protocol run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PROTOCOL "))
    record = json.loads(line[len("PROTOCOL "):])
    stamps = {**record["stamps"], "exit": end}
    phases, last = {}, start
    for phase in PHASES:
        phases[phase] = stamps[phase] - last
        last = stamps[phase]
    return {"wall": end - start, "phases": phases, "test": record["test"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["DiffRec"])
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--config_files", default=PAPER, help="space-separated yaml files ('' for none)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra settings")
    parser.add_argument("--workdir", default=str(REPO), help="the runs' working folder: they write log/ and saved/ there, and a relative data_path "
                        "(dataset/ in the dataset configs) is read from there")
    parser.add_argument("--out", default=None, help="result file (default benchmarks/results/protocol-<device>.md)")
    args = parser.parse_args(argv)
    overrides = {"show_progress": False, "use_gpu": args.device == "cuda"}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set: {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)  # numbers, booleans, lists as YAML reads them
    config_files = args.config_files.split() or None

    import torch
    from speed import BUILTIN

    runs = []
    for r in range(args.repeats):
        for model in args.models:
            settings = {**overrides, **(BUILTIN if model == "recbole.DiffRec" else {})}
            run = run_once(model, args.dataset, config_files, settings, args.workdir)
            runs.append({"model": model, **run})
            phases = "  ".join(f"{p} {run['phases'][p]:.2f}" for p in PHASES)
            print(f"run {r + 1}/{args.repeats} {model}: wall {run['wall']:.2f} s ({phases}); "
                  f"test recall@20 {run['test'].get('recall@20', float('nan')):.4f}", flush=True)

    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({harness.cpu()}, {os.cpu_count()} cores)"
    versions = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
                "torch_threads": torch.get_num_threads()}
    command = shlex.join(["python", "benchmarks/protocol.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# The paper's protocol end to end on {args.dataset} ({args.device})", "",
             f"Hardware and versions: `{json.dumps(versions)}`", "",
             "Seconds of wall time, each run a fresh process; a phase is the time from the end of the one before.", "",
             "| model | run | wall s | " + " | ".join(PHASES) + " | test R@20 | test N@20 |",
             "|---|---|---|" + "---|" * len(PHASES) + "---|---|"]
    for model in args.models:
        mine = [run for run in runs if run["model"] == model]
        for i, run in enumerate(mine, 1):
            lines.append(f"| {model} | {i} | {run['wall']:.2f} | " + " | ".join(f"{run['phases'][p]:.2f}" for p in PHASES)
                         + f" | {run['test'].get('recall@20', float('nan')):.4f} | {run['test'].get('ndcg@20', float('nan')):.4f} |")
        if len(mine) > 1:
            lines.append(f"| {model} | median | {statistics.median(r['wall'] for r in mine):.2f} | "
                         + " | ".join(f"{statistics.median(r['phases'][p] for r in mine):.2f}" for p in PHASES) + " | | |")
    lines += ["", f"Command: `{command}`"]
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"protocol-{args.device}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out}")


if __name__ == "__main__":
    main()
