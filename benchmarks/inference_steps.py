"""Accuracy versus time of fewer-step inference (the `inference_steps` setting), on one trained model.

A model trained with T diffusion steps ranks items by a reverse chain over all T steps (the paper's
inference, `inference_steps: 0`). With `inference_steps: k` the chain visits k steps evenly spaced over
[0, T-1] (the respaced posterior), and k = 1 is a single x0 prediction. The weights are the same for
every row: only the inference changes. Every chain is run two ways: in the denoiser's hidden space (the
default, see `MLPDenoiser.affine_chain`) and step by step through the whole MLP (what RecBole's DiffRec and
the paper's code do); their metrics must agree to 1e-6. Each row's full-sort evaluation of all test users is timed
`--rounds` times, the rounds interleaved across rows so a noisy machine affects every row alike; the
median is reported.

    python benchmarks/inference_steps.py --checkpoint saved/DiffRec-<...>.pth --steps 40 10 4 1
    python benchmarks/inference_steps.py --train        # trains DiffRec with the paper's ML-1M settings first

Writes benchmarks/results/inference_steps-<device>.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parent.parent
PAPER = [str(REPO / "dataset_configs" / "ml-1m_clean.yaml"),
         str(REPO / "dataset_configs" / "ml-1m_clean_diffrec_paper.yaml")]
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a checkpoint of one of our models (saved/<Model>-<...>.pth)")
    parser.add_argument("--train", action="store_true", help="train DiffRec on ml-1m_clean (paper settings) first")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 10, 4, 1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.train:
        parser.error("give --checkpoint or --train")
    sys.path.insert(0, str(REPO))
    import torch

    from recbole_diffrec import pipeline
    from recbole_diffrec.networks import MLPDenoiser
    from recbole_diffrec.pipeline import prepare

    if args.train:
        config, (train, valid, test), model, trainer = prepare(
            "DiffRec", "ml-1m_clean", PAPER, {"seed": args.seed, "show_progress": False, "state": "WARNING"})
        trainer.fit(train, valid, saved=True, show_progress=False)
        checkpoint = trainer.saved_model_file
    else:
        checkpoint = args.checkpoint
    config, (_, valid, test), model, trainer = pipeline.load(checkpoint, {"state": "WARNING"})
    total = model.settings["steps"]
    for k in args.steps:
        if not 1 <= k <= total:
            raise SystemExit(f"--steps: {k} is not in [1, {total}] (the model was trained with steps={total})")
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    denoisers = [m for m in model.modules() if isinstance(m, MLPDenoiser)]
    ways = ("factored", "step by step")
    results, seconds = {}, {(k, way): [] for k in args.steps for way in ways}
    for r in range(args.rounds):
        for k in args.steps:
            for way in ways:
                model.settings["inference_steps"] = 0 if k == total else k
                for denoiser in denoisers:
                    denoiser.hidden_chain = way == "factored"
                sync()
                start = time.perf_counter()
                result = trainer.evaluate(test, load_best_model=False)
                sync()
                seconds[k, way].append(time.perf_counter() - start)
                if r == 0:
                    results[k, way] = ({m: float(result[m]) for m in METRICS},
                                       {m: float(v) for m, v in trainer.evaluate(valid, load_best_model=False).items()})
                print(f"round {r + 1}/{args.rounds} inference_steps {k} {way}: {seconds[k, way][-1]:.2f} s", flush=True)

    device = torch.cuda.get_device_name() if model.device.type == "cuda" else f"CPU ({harness.cpu()}, {torch.get_num_threads()} threads)"
    base = statistics.median(seconds[total, "step by step"]) if total in args.steps else None
    lines = [
        f"# Fewer-step inference: {config['model']} on {config['dataset']}", "",
        f"Checkpoint `{Path(checkpoint).name}` (trained with steps={total}, seed {config['seed']}); device: {device}; "
        f"torch {torch.__version__}. Test metrics of the same weights; time = median of {args.rounds} full-sort "
        "evaluations of all test users (rounds interleaved), with the reverse chain in the denoiser's hidden "
        "space (factored, the default) and step by step through the whole MLP; speed-up against the paper's "
        "inference (all steps, step by step). Produced by `benchmarks/inference_steps.py`.", "",
        "| inference steps | R@10 | R@20 | N@10 | N@20 | valid R@20 | eval s factored | eval s step by step "
        "| speed-up factored | speed-up step by step | max metric difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in args.steps:
        test_m, valid_m = results[k, "factored"]
        other_test, other_valid = results[k, "step by step"]
        diff = max(max(abs(test_m[m] - other_test[m]) for m in METRICS),
                   max(abs(valid_m[m] - other_valid[m]) for m in valid_m))
        med = {way: statistics.median(seconds[k, way]) for way in ways}
        ratios = [f"{base / med[way]:.1f}x" if base else "n/a" for way in ways]
        lines.append(f"| {k}{' (all, the paper)' if k == total else ''} | " + " | ".join(f"{test_m[m]:.4f}" for m in METRICS)
                     + f" | {valid_m['recall@20']:.4f} | {med['factored']:.2f} | {med['step by step']:.2f} | "
                     + " | ".join(ratios) + f" | {diff:.1e} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"inference_steps-{'cuda' if model.device.type == 'cuda' else 'cpu'}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {path}")


if __name__ == "__main__":
    main()
