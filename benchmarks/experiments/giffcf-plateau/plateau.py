"""GiffCF's plateau: which of the initialisation, bfloat16 or the data order holds a seed at validation R@20
0.08 on ML-1M clean (and 0.057 on ML-1M noisy) for hundreds of epochs?

One run per call, a fixed budget (the published settings otherwise), printing the validation curve:

    python benchmarks/experiments/giffcf-plateau/plateau.py --seed 2022 --init_seed 2020 --epochs 50

--seed sets the run (data order, dropout, steps drawn); --init_seed, where given, replaces the model's initial
weights with those a run of that seed starts from; --precision float32 turns bfloat16 autocast off.
"""

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="GiffCF")
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--init_seed", type=int, default=None)
    parser.add_argument("--init_part", default="", help="with --init_seed: swap only the parameters whose names "
                        "start with one of these comma-separated prefixes (default: all)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--extra", default="{}", help="more settings, as JSON")
    args = parser.parse_args()
    settings = {**harness.variant_settings(args.dataset, args.model), "epochs": args.epochs,
                "stopping_step": 1000, "train_precision": args.precision, **json.loads(args.extra)}
    config_files = [str(BENCH.parent / "dataset_configs" / f"{args.dataset}.yaml")]

    def adjust(net, train):
        if args.init_seed is None:
            return
        import torch
        from recbole.utils import init_seed

        init_seed(args.init_seed, True)
        fresh = type(net)(train._dataset.config, train._dataset).to(next(net.parameters()).device)
        prefixes = tuple(p for p in args.init_part.split(",") if p)
        swapped = {k: v for k, v in fresh.state_dict().items() if not prefixes or k.startswith(prefixes)}
        net.load_state_dict({**net.state_dict(), **swapped})
        print(f"initial weights of seed {args.init_seed} for: {sorted(swapped)}", file=sys.stderr)
        torch.manual_seed(args.seed)  # the run's own draws from here on, as without the swap

    row = harness.train_to_early_stop(args.model, args.seed, args.dataset, config_files, settings, adjust)
    print(json.dumps({"seed": args.seed, "init_seed": args.init_seed, "init_part": args.init_part,
                      "precision": args.precision,
                      "epochs": args.epochs, "valid_recall@20": row["valid_recall@20"],
                      "test_recall@20": row["test_recall@20"], "best_epoch": row.get("best_epoch")}))


if __name__ == "__main__":
    main()
