"""DiffuRec trained by recbole-diffrec and by the published code at an equal budget: the same users, settings,
epochs and seeds, validation (and test) HR and NDCG compared.

The published code is run from a scratch copy that is never committed:

    git -C <a snapshot of WHUIR/DiffuRec> archive HEAD src | tar -x -C /tmp/diffurec_official
    python benchmarks/diffurec_equal_budget.py --official /tmp/diffurec_official/src \\
        --sample_users 3000 --seeds 2020 2021 --workdir /tmp/beauty-work --table beauty

Data: the users of ``recbole-diffrec convert --sample_users N --sample_seed S`` (the same draw), written once as a
RecBole ``.inter`` file for recbole-diffrec and once as the published code's ``dataset.pkl`` (``train``, ``val``,
``test`` per user: all but the last two items, the second to last, the last; items numbered 1..n, 0 pads).
recbole-diffrec's settings: benchmarks/configs/<dataset>/DiffuRec@equal-budget.yaml (its epochs are the
budget of both; ``--table`` also appends its rows to compare.py's CSV). Both at the published defaults (128-d,
4 blocks, 32 steps, trunc-linear, lambda 0.001, Adam 1e-3, batch 512, max length 50, dropout 0.1 / 0.3). Both validate once, after the last epoch (recbole-diffrec:
``eval_step`` = epochs; published code: ``--eval_interval`` = epochs - 1, which evaluates after its last
epoch), then test that model. Every run is its own process on one thread; ``--jobs 2`` runs two at a time.
"""

import argparse
import csv
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import cpu

REPO = Path(__file__).resolve().parent.parent
KEYS = ["hit@5", "hit@10", "hit@20", "ndcg@5", "ndcg@10", "ndcg@20"]
_spec = importlib.util.spec_from_file_location("compare", REPO / "benchmarks" / "compare.py")
COMPARE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(COMPARE)


def sampled_sequences(path, n, seed):
    """{user: [items in time order]} for the seeded user draw of recbole-diffrec's converter."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    from recbole_diffrec.data.convert import load_sequences, sample_users

    users, items, _ = load_sequences(path)
    keep = sample_users(users, n, seed) if n else np.ones(len(users), dtype=bool)
    sequences = {}
    for user, item in zip(users[keep].tolist(), items[keep].tolist()):
        sequences.setdefault(user, []).append(item)
    return sequences


def write_published_data(sequences, folder):
    """The published code's dataset.pkl: items renumbered 1..n in sorted order (0 is its padding)."""
    items = sorted({i for seq in sequences.values() for i in seq})
    smap = {item: k + 1 for k, item in enumerate(items)}
    data = {"smap": smap, "train": {}, "val": {}, "test": {}}
    for user, seq in sequences.items():
        seq = [smap[i] for i in seq]
        data["train"][user], data["val"][user], data["test"][user] = seq[:-2], [seq[-2]], [seq[-1]]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "dataset.pkl", "wb") as handle:
        pickle.dump(data, handle)
    return len(items)


def run_ours(args, seed):
    """One recbole-diffrec run through compare.py's runner (its own process): its CSV row, with the validation
    after the last epoch and the test of that model."""
    code, out, tail = COMPARE.run_child(args.variant, seed, args.name, [str(REPO / "dataset_configs" / "beauty.yaml")],
                                        args.workdir)
    line = [x for x in out if x.startswith("RESULT ")]
    if code or not line:
        raise SystemExit(f"recbole-diffrec's run failed ({code}):\n" + "\n".join(tail))
    row = json.loads(line[0][len("RESULT "):])
    return row, {"valid": {k: row[f"valid_{k}"] for k in KEYS}, "test": {k: row[f"test_{k}"] for k in KEYS},
                 "seconds": row["total_seconds"], "precision": "float32"}


def run_published(src, name, seed, epochs, log_dir):
    """One run of the published main.py (CPU, one thread); its printed validation and test dicts, in percent,
    back to fractions."""
    # numpy 2 removed the np.int alias its step sampler still uses: restore it in that process, then run main.py
    shim = "import numpy, runpy, sys; numpy.int = int; sys.argv[0] = 'main.py'; runpy.run_path('main.py', run_name='__main__')"
    command = [sys.executable, "-c", shim, "--dataset", name, "--device", "cpu", "--epochs", str(epochs),
               "--eval_interval", str(epochs - 1), "--random_seed", str(seed), "--log_file", str(log_dir) + "/"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=src, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"the published code failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    test = printed_dict(lines[lines.index("Test" + "-" * 54) + 1])
    valid = printed_dict(lines[lines.index("Best Eval" + "-" * 57) + 1])

    def fractions(values, prefix=""):
        return {k: values[prefix + re.sub("hit", "HR", k).replace("ndcg", "NDCG")] / 100 for k in KEYS}

    return {"valid": fractions(valid, "Best_"), "test": fractions(test), "seconds": seconds, "precision": "float32"}


def printed_dict(line):
    """{'HR@5': 1.23, ...} from a printed dict whose values may print as np.float64(1.23) (numpy 2)."""
    return {k: float(v) for k, v in re.findall(r"'([\w@]+)': (?:np\.float64\()?([-\d.eE+]+)", line)}


def report(args, results, n_items, n_users):
    import numpy as np

    out = ["# DiffuRec at an equal budget: recbole-diffrec vs the published code (CPU)", "",
           f"Command: `python benchmarks/diffurec_equal_budget.py --official <scratch copy>/src "
           f"--sample_users {args.sample_users} --sample_seed {args.sample_seed} --variant {args.variant} "
           f"--seeds {' '.join(map(str, args.seeds))} --jobs {args.jobs}`", "",
           f"Data: Amazon Beauty as released with DiffuRec, the seeded draw of {n_users:,} users "
           f"(`recbole-diffrec convert --sample_users {args.sample_users} --sample_seed {args.sample_seed}`), "
           f"{n_items:,} items; leave one out. Both at the published defaults, {args.epochs} epochs, one validation "
           "after the last epoch, one thread per run. Machine: " + cpu() + ".", "",
           "| implementation | seed | valid HR@10 | valid NDCG@10 | valid HR@20 | valid NDCG@20 | test HR@10 | "
           "test NDCG@10 | precision | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for impl in ("recbole-diffrec", "published"):
        for seed in args.seeds:
            r = results[impl, seed]
            out.append(f"| {impl} | {seed} | {r['valid']['hit@10']:.4f} | {r['valid']['ndcg@10']:.4f} | "
                       f"{r['valid']['hit@20']:.4f} | {r['valid']['ndcg@20']:.4f} | {r['test']['hit@10']:.4f} | "
                       f"{r['test']['ndcg@10']:.4f} | {r['precision']} | {r['seconds']:.0f} |")
    out += ["", "Means over seeds, and recbole-diffrec relative to the published code:", ""]
    for split in ("valid", "test"):
        for key in ("hit@10", "ndcg@10", "hit@20", "ndcg@20"):
            ours = np.mean([results["recbole-diffrec", s][split][key] for s in args.seeds])
            theirs = np.mean([results["published", s][split][key] for s in args.seeds])
            out.append(f"- {split} {key}: {ours:.4f} vs {theirs:.4f} ({(ours / theirs - 1) * 100:+.1f}%)")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="the published code's src folder (a scratch copy)")
    parser.add_argument("--sequences", default=str(REPO.parent / "shared" / "datasets" / "seq" / "beauty" / "beauty.txt"))
    parser.add_argument("--sample_users", type=int, default=3000, help="0: every user")
    parser.add_argument("--sample_seed", type=int, default=0)
    parser.add_argument("--variant", default="DiffuRec@equal-budget",
                        help="recbole-diffrec's settings: benchmarks/configs/<dataset>/<variant>.yaml; its epochs "
                        "are both implementations' budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--workdir", default="/tmp/diffurec-equal-budget")
    parser.add_argument("--table", default=None, help="also append recbole-diffrec's rows to results/<table>.csv "
                        "(compare.py's table of this dataset)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "diffurec-equal-budget-cpu.md"))
    args = parser.parse_args()
    args.name = f"beauty-u{args.sample_users}" if args.sample_users else "beauty"
    settings = COMPARE.model_settings(args.name, args.variant)
    args.epochs = settings.get("epochs")
    if not args.epochs or args.epochs < 2 or settings.get("eval_step") != args.epochs:
        parser.error(f"{args.variant}.yaml must set epochs >= 2 and eval_step equal to it (one validation after "
                     f"the last epoch, as the published code's run here); it has {settings}")
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    sys.path.insert(0, str(REPO))
    from recbole_diffrec.data.convert import convert_sequences

    sequences = sampled_sequences(args.sequences, args.sample_users, args.sample_seed)
    n_items = write_published_data(sequences, Path(args.official).parent / "datasets" / "data" / args.name)
    convert_sequences(args.sequences, Path(args.workdir) / "dataset", args.name, overwrite=True,
                      sample=args.sample_users or None, sample_seed=args.sample_seed)
    jobs = [(impl, seed) for seed in args.seeds for impl in ("published", "recbole-diffrec")]
    rows = []

    def run(job):
        impl, seed = job
        start = time.strftime("%H:%M:%S")
        if impl == "published":
            result = run_published(args.official, args.name, seed, args.epochs, Path(args.workdir) / "log")
        else:
            row, result = run_ours(args, seed)
            rows.append(row)
        print(f"{start} -> {time.strftime('%H:%M:%S')} {impl} seed {seed}: valid HR@10 {result['valid']['hit@10']:.4f} "
              f"NDCG@10 {result['valid']['ndcg@10']:.4f}, test HR@10 {result['test']['hit@10']:.4f} "
              f"({result['seconds']:.0f} s)", flush=True)
        return job, result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(run, jobs))
    text = report(args, results, n_items, len(sequences))
    Path(args.out).write_text(text)
    print(text)
    if args.table:
        path = REPO / "results" / f"{args.table}.csv"
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COMPARE.fields(KEYS) if new else COMPARE.csv_fields(path),
                                    extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(sorted(rows, key=lambda r: r["seed"]))
        print(f"appended recbole-diffrec's rows to {path}; rebuild the table with compare.py --report_only")


if __name__ == "__main__":
    main()
