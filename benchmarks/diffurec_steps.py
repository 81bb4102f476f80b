"""One trained DiffuRec evaluated with fewer reverse steps (its `inference_steps`, a strided chain), each count
timed, on validation and test. Every evaluation draws its reverse chain's noise from a fixed seed per draw.

    python benchmarks/diffurec_steps.py --checkpoint <a DiffuRec checkpoint or resume snapshot> \
        --steps 1 2 4 8 16 32 --draws 2 --out results/analysis/sequential.md

Writes a markdown table (HR@10 and NDCG@10, RecBole's full ranking over all items, mean over draws; seconds
for validation and test together) and, beside it, the raw rows as json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import harness


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--draws", type=int, default=2, help="evaluations per step count, each from its own seed")
    parser.add_argument("--out", default=str(harness.REPO / "results" / "analysis" / "sequential.md"))
    parser.add_argument("--intro", default="", help="markdown put above the table (what was trained, how far)")
    parser.add_argument("--splits", nargs="+", default=["valid", "test"], choices=["valid", "test"],
                        help="the splits to evaluate (each full evaluation runs the whole chain per user)")
    args = parser.parse_args()
    sys.path.insert(0, str(harness.REPO))
    import torch

    from recbole_diffrec.saved_run import load

    rows = []
    for k in args.steps:
        _, (_, valid, test), model, trainer = load(args.checkpoint, {"inference_steps": k})
        results, seconds = [], []
        for draw in range(args.draws):
            torch.manual_seed(draw)
            start = time.perf_counter()
            result = {}
            for split, loader in (("valid", valid), ("test", test)):
                if split in args.splits:
                    result.update({f"{split}_{m}": float(x) for m, x in
                                   trainer.evaluate(loader, load_best_model=False).items()})
            seconds.append(time.perf_counter() - start)
            results.append(result)
        row = {"steps": k, "seconds": float(np.mean(seconds)),
               **{key: float(np.mean([r[key] for r in results])) for key in results[0]},
               **{f"{key}_std": float(np.std([r[key] for r in results])) for key in results[0]}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    full = next((r for r in rows if r["steps"] == model.settings["steps"]), rows[-1])
    columns = [f"{split}_{m}" for split in args.splits for m in ("hit@10", "ndcg@10")]
    lines = ["# Sequential models: what DiffuRec's reverse steps buy", "", args.intro.strip(), "",
             f"One trained DiffuRec (`{Path(args.checkpoint).name}`), evaluated with `inference_steps` = each count "
             f"below ({model.settings['steps']} = the paper's full chain): HR@10 and NDCG@10 of RecBole's full "
             f"ranking over all items (the history not masked, as the paper), mean ± std over {args.draws} draws of "
             f"the chain's noise; seconds for one pass over {' and '.join(args.splits)}, one thread. Machine: "
             f"{harness.cpu()}. Produced by `python benchmarks/diffurec_steps.py`.", "",
             "| reverse steps | " + " | ".join(c.replace("_", " ").replace("hit", "HR").replace("ndcg", "NDCG")
                                               for c in columns) + " | seconds | vs all steps |",
             "|---|" + "---|" * (len(columns) + 2)]
    for r in rows:
        cells = " | ".join(f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in columns)
        lines.append(f"| {r['steps']} | {cells} | {r['seconds']:.1f} | {full['seconds'] / r['seconds']:.1f}x faster |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
