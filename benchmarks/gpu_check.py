"""The GPU check's measuring steps (benchmarks/gpu/check.sh runs them; --dry_run makes them tiny, on the CPU).

    python benchmarks/gpu_check.py speed --device cuda --out $OUT            # side by side, one run
    python benchmarks/gpu_check.py long --model DiffuRec --seconds 240 --out $OUT   # train within a budget

speed: steady-state time of a training epoch and of a full-sort validation (one warm-up of each, then the
mean of --repeats), recbole-diffrec's DiffRec and L-DiffRec against RecBole's DiffRec on ml-1m_clean; and a
training batch of DiffuRec against RecBole's SASRec (cross-entropy) on Beauty. Each row in its own process.

long: trains a model on Beauty for at most --seconds, validating every --eval_every epochs (HR@10 and NDCG@10
on validation and test, logged and written to <out>/long-<model>.csv), and leaves a resume snapshot
<out>/state/<model>-last.pth (weights, optimizer, sampler, RNG): carried into the next loan as
gpu-state/ (see docs/gpu.md), it continues where this one stopped. A model without a snapshot starts fresh.
"""

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import harness

GENERAL_ROWS = ["recbole.DiffRec", "DiffRec", "LDiffRec"]
SEQUENTIAL_ROWS = ["DiffuRec", "recbole.SASRec"]
SASREC_CE = {"loss_type": "CE", "train_neg_sample_args": None}


def sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def setup(row, device, dry_run):
    """(dataset, config files, settings) of a row."""
    settings = {"show_progress": False, "state": "WARNING", "use_gpu": device == "cuda", "seed": 2020}
    if row in GENERAL_ROWS:
        settings.update(harness.variant_settings("ml-1m_clean", row))  # the table's settings of the row
        if dry_run:
            return "ml-100k", [], {**settings, "epochs": 2}
        return "ml-1m_clean", [str(harness.REPO / "dataset_configs" / "ml-1m_clean.yaml")], settings
    if row == "recbole.SASRec":
        settings.update(SASREC_CE)
    if dry_run:
        small = {"hidden_size": 16, "n_layers": 1, "n_heads": 2, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 512}
        if row == "DiffuRec":
            small["steps"] = 4
        if row == "recbole.SASRec":
            small["inner_size"] = 32
        return "ml-100k", [], {**settings, **small}
    return "beauty", [str(harness.REPO / "dataset_configs" / "beauty.yaml")], settings


def speed_child(row, device, dry_run, repeats, batches):
    import torch

    sys.path.insert(0, str(harness.REPO))
    from recbole_diffrec.pipeline import prepare

    dataset, files, settings = setup(row, device, dry_run)
    config, (train, valid, _), net, trainer = prepare(row, dataset, files, settings)
    out = {"row": row, "dataset": dataset, "device": torch.cuda.get_device_name() if device == "cuda" else harness.cpu()}
    if row in GENERAL_ROWS:
        times = []
        for epoch in range(repeats + 1):  # the first is the warm-up
            sync(device)
            start = time.perf_counter()
            trainer._train_epoch(train, epoch)
            sync(device)
            times.append(time.perf_counter() - start)
        evals = []
        for _ in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            trainer.evaluate(valid, load_best_model=False)
            sync(device)
            evals.append(time.perf_counter() - start)
        out.update(train_epoch_ms=1000 * sum(times[1:]) / repeats, eval_ms=1000 * sum(evals[1:]) / repeats)
    else:
        net.train()
        loader = iter(train)
        steps = []
        for n in range(batches + 1):  # the first is the warm-up
            interaction = next(loader).to(net.device)
            sync(device)
            start = time.perf_counter()
            trainer.optimizer.zero_grad()
            loss = net.calculate_loss(interaction)
            loss.backward()
            trainer.optimizer.step()
            sync(device)
            steps.append(time.perf_counter() - start)
        out.update(train_batch_ms=1000 * sum(steps[1:]) / batches, batch_size=config["train_batch_size"])
    out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda" else None
    out["peak_host_mb"] = harness.peak_host_mb()
    harness.emit(out)


def speed(args):
    rows = []
    for row in GENERAL_ROWS + SEQUENTIAL_ROWS:
        code, result, tail = harness.run_child(
            [__file__, "speed", "--device", args.device, "--repeats", args.repeats, "--batches", args.batches,
             "--out", args.out, "--child", row, *(["--dry_run"] if args.dry_run else [])], row, echo=False)
        if code or result is None:
            print(f"{row}: FAILED ({code}) {tail[-2:]}", flush=True)
            continue
        print(json.dumps(result), flush=True)
        rows.append(result)
    out = Path(args.out)
    (out / "speed.json").write_text(json.dumps(rows, indent=1) + "\n")
    general = {r["row"]: r for r in rows if "train_epoch_ms" in r}
    seq = {r["row"]: r for r in rows if "train_batch_ms" in r}
    lines = [f"# Speed on {args.device}{' (dry run: tiny data, not a measurement)' if args.dry_run else ''}", "",
             f"Device: {rows[0]['device'] if rows else '?'}. Steady state: one warm-up, then the mean of {args.repeats} "
             f"epochs / evaluations, or of {args.batches} training batches. Ratios: RecBole's row over ours.", "",
             "| row | data | train epoch ms | eval ms | train x | eval x | peak GPU MB |", "|---|---|---|---|---|---|---|"]
    base = general.get("recbole.DiffRec")
    for row, r in general.items():
        ratio = (lambda k: f"{base[k] / r[k]:.2f}x") if base else (lambda k: "")
        lines.append(f"| {row} | {r['dataset']} | {r['train_epoch_ms']:.0f} | {r['eval_ms']:.0f} | "
                     f"{ratio('train_epoch_ms')} | {ratio('eval_ms')} | {r['peak_gpu_mb'] or ''} |")
    lines += ["", "| row | data | batch | train batch ms | vs SASRec |", "|---|---|---|---|---|"]
    sasrec = seq.get("recbole.SASRec")
    for row, r in seq.items():
        ratio = f"{r['train_batch_ms'] / sasrec['train_batch_ms']:.2f}x" if sasrec else ""
        lines.append(f"| {row} | {r['dataset']} | {r['batch_size']} | {r['train_batch_ms']:.1f} | {ratio} |")
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def long(args):
    """Train `args.model` within `args.seconds`, resuming from <out>/state or --state_in."""
    sys.path.insert(0, str(harness.REPO))
    from recbole_diffrec.pipeline import prepare

    deadline = time.monotonic() + args.seconds
    out = Path(args.out)
    state_dir = out / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    snapshot = state_dir / f"{args.model}-last.pth"
    carried = Path(args.state_in) / f"{args.model}-last.pth" if args.state_in else None
    resume = carried if carried is not None and carried.is_file() else None
    dataset, files, settings = setup(args.model, args.device, args.dry_run)
    if args.dataset:  # another sequential dataset than Beauty (e.g. its 3,000-user sample)
        dataset, files = args.dataset, [str(harness.REPO / f) for f in args.config_files]
    settings.update({"checkpoint_dir": str(state_dir / "run"), "eval_step": args.eval_every})
    config, (train, valid, test), net, trainer = prepare(args.model, dataset, files, settings,
                                                          resume_file=str(resume) if resume else None)
    log = out / f"long-{args.model}.csv"
    new = not log.exists()
    epoch = trainer.start_epoch
    per_epoch = None
    with open(log, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["epoch", "seconds", "valid_hit@10", "valid_ndcg@10", "test_hit@10", "test_ndcg@10"])
        start = time.monotonic()
        while epoch < config["epochs"]:
            if per_epoch is not None and time.monotonic() + per_epoch * 1.5 > deadline:
                break
            began = time.monotonic()
            trainer._train_epoch(train, epoch)
            per_epoch = time.monotonic() - began
            if (epoch + 1) % args.eval_every == 0:
                v = trainer.evaluate(valid, load_best_model=False)
                t = trainer.evaluate(test, load_best_model=False)
                writer.writerow([epoch, f"{time.monotonic() - start:.0f}", v["hit@10"], v["ndcg@10"], t["hit@10"],
                                 t["ndcg@10"]])
                handle.flush()
                print(f"epoch {epoch}: valid HR@10 {v['hit@10']:.4f} NDCG@10 {v['ndcg@10']:.4f}; "
                      f"test HR@10 {t['hit@10']:.4f} NDCG@10 {t['ndcg@10']:.4f}", flush=True)
            epoch += 1
    trainer._save_last(train, epoch)  # the state before `epoch`: the next loan resumes there
    shutil.copyfile(trainer.last_checkpoint_file, snapshot)
    size = snapshot.stat().st_size / 2 ** 20
    print(f"{args.model}: trained to epoch {epoch} of {config['epochs']} ({per_epoch or 0:.1f} s an epoch); "
          f"resume snapshot {snapshot} ({size:.1f} MB{', over the 64 MiB carry limit' if size > 64 else ''})")
    shutil.rmtree(state_dir / "run", ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["speed", "long"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry_run", action="store_true", help="tiny data and settings, on any device")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--model", default="DiffuRec")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--eval_every", type=int, default=5)
    parser.add_argument("--state_in", default=None, help="a carried folder with an earlier loan's snapshots")
    parser.add_argument("--dataset", default=None, help="long: train on this dataset instead of Beauty")
    parser.add_argument("--config_files", nargs="*", default=["dataset_configs/beauty.yaml"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.child:
        speed_child(args.child, args.device, args.dry_run, args.repeats, args.batches)
    elif args.step == "speed":
        speed(args)
    else:
        long(args)


if __name__ == "__main__":
    main()
