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
            v = trainer.evaluate(valid, load_best_model=False)
            t = trainer.evaluate(test, load_best_model=False)
            seconds.append(time.perf_counter() - start)
            results.append({**{f"valid_{m}": float(x) for m, x in v.items()}, **{f"test_{m}": float(x) for m, x in t.items()}})
        row = {"steps": k, "seconds": float(np.mean(seconds)),
               **{key: float(np.mean([r[key] for r in results])) for key in results[0]},
               **{f"{key}_std": float(np.std([r[key] for r in results])) for key in results[0]}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    full = next((r for r in rows if r["steps"] == model.settings["steps"]), rows[-1])
    lines = ["# Sequential models: what DiffuRec's reverse steps buy", "", args.intro.strip(), "",
             f"One trained DiffuRec (`{Path(args.checkpoint).name}`), evaluated with `inference_steps` = each count "
             f"below ({model.settings['steps']} = the paper's full chain): HR@10 and NDCG@10 of RecBole's full "
             f"ranking over all items (the history not masked, as the paper), mean ± std over {args.draws} draws of "
             f"the chain's noise; seconds for one validation and one test pass together, one thread. Machine: "
             f"{harness.cpu()}. Produced by `python benchmarks/diffurec_steps.py`.", "",
             "| reverse steps | valid HR@10 | valid NDCG@10 | test HR@10 | test NDCG@10 | seconds | vs all steps |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in ("valid_hit@10", "valid_ndcg@10",
                                                                          "test_hit@10", "test_ndcg@10"))
        lines.append(f"| {r['steps']} | {cells} | {r['seconds']:.1f} | {full['seconds'] / r['seconds']:.1f}x faster |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
