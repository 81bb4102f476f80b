"""Side-by-side table: several models, several seeds, one dataset config, one protocol.

Every (model, seed) runs in its own subprocess (so its peak memory is its own and a crash loses only
that row) and is appended to results/<dataset>.csv as soon as it ends; results/<dataset>.md (mean +- std
over seeds, time per epoch, total time, parameters, peak memory, and the exact settings of each row) and
results/<dataset>.png are rebuilt from the CSV at the end. Per-model settings come from
benchmarks/configs/<dataset>/<Model>.yaml when that file exists; "Model@variant" runs Model with
benchmarks/configs/<dataset>/Model@variant.yaml and is labelled so in the table.

    python benchmarks/compare.py --dataset ml-1m_clean --config_files dataset_configs/ml-1m_clean.yaml \
        --models DiffRec TDiffRec LDiffRec recbole.DiffRec EASE MultiVAE LightGCN BPR ItemKNN Pop \
        --seeds 2020 2021 2022

Sequential protocols name their metrics and the table's file, and may put published numbers beside ours:

    python benchmarks/compare.py --dataset beauty-u4000 --table beauty \
        --config_files dataset_configs/beauty.yaml --metrics hit@5 hit@10 hit@20 ndcg@5 ndcg@10 ndcg@20 \
        --rank_by ndcg@10 --paper benchmarks/configs/beauty-u4000/paper.yaml \
        --notes benchmarks/configs/beauty-u4000/notes.md --models SASRec GRU4Rec Pop --seeds 2020 2021 2022
"""

import argparse
import csv
import sys
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parent.parent
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
RUN_FIELDS = ["epochs", "seconds_per_epoch", "total_seconds", "params", "peak_host_mb", "settings", "config_files",
              "epoch_budget"]
SHORT = {"recall": "R", "ndcg": "N", "hit": "HR", "precision": "P", "mrr": "MRR"}


def fields(metrics):
    return ["model", "seed", *[f"test_{m}" for m in metrics], *[f"valid_{m}" for m in metrics], *RUN_FIELDS]


FIELDS = fields(METRICS)


def label(metric):
    name, k = metric.split("@")
    return f"{SHORT.get(name, name)}@{k}"


def child(label, seed, dataset, config_files, extra):
    """One (row, seed): trained to early stop, selected on validation, tested (harness.train_to_early_stop)."""
    return {"model": label, **harness.train_to_early_stop(harness.model_of(label), seed, dataset, config_files, extra)}


def run_child(model, seed, dataset, config_files, workdir=REPO):
    """Run one (model, seed) in a subprocess; (exit code, its RESULT row or None, its stderr's last lines)."""
    return harness.run_child([__file__, "--child", model, str(seed), "--dataset", dataset, "--config_files",
                              *config_files], f"{model} seed {seed}", cwd=workdir)


model_settings = harness.variant_settings


def csv_fields(csv_path):
    with open(csv_path) as handle:
        return next(csv.reader(handle))


def csv_metrics(csv_path):
    """The metrics a results CSV holds, in its column order."""
    return [f[len("test_"):] for f in csv_fields(csv_path) if f.startswith("test_")]


def write_report(dataset, csv_path, metrics=None, rank_by=None, paper=None, notes=None):
    """results/<table>.md and .png from the CSV. ``paper``: a yaml file {source: text, rows: {row: {metric:
    value}}} of published numbers, shown beside ours; ``notes``: a markdown file put under the intro."""
    import numpy as np
    import yaml

    metrics = metrics or csv_metrics(csv_path)
    rows = list(csv.DictReader(open(csv_path)))
    models = list(dict.fromkeys(r["model"] for r in rows))
    published = yaml.safe_load(Path(paper).read_text()) if paper else {"rows": {}}
    paper_metrics = list(dict.fromkeys(m for values in published["rows"].values() for m in values))
    out = [f"# {dataset}: side by side", "",
           "Test metrics, mean ± std over seeds (full ranking; model selection on validation). "
           "Produced by `benchmarks/compare.py`; each row's settings are listed below the table. "
           "Rows of recbole-diffrec's models without `train_precision` in their settings ran with the default, "
           "`auto`: bfloat16 autocast of the training step on a CPU with native bfloat16, float32 elsewhere. "
           "Keys a row does not list take the model's defaults (`properties/` for recbole-diffrec's models) "
           "as of the commit that added the row. Epochs: trained / the row's budget (fewer: early stop).", ""]
    if notes:
        out += [Path(notes).read_text().strip(), ""]
    paper_cells = [f"paper {label(m)}" for m in paper_metrics]
    header = ["model", "seeds", "epochs", *map(label, metrics), *paper_cells, "s/epoch", "total s", "params",
              "peak MB"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    summary, spread = {}, {}

    def params(n):  # RecBole's non-parametric models (EASE, ItemKNN, Pop) report a placeholder parameter
        return f"{int(n):,}" if n > 1 else "n/a"

    def epochs(mine):
        trained = sorted({int(float(r["epochs"])) for r in mine})
        budgets = {r.get("epoch_budget") or "" for r in mine}
        text = "/".join(map(str, trained)) if len(trained) <= 3 else f"{trained[0]}-{trained[-1]}"
        return f"{text} / {int(float(budgets.pop()))}" if len(budgets) == 1 and "" not in budgets else text

    for model in models:
        mine = [r for r in rows if r["model"] == model]
        cells = []
        for m in metrics:
            values = np.array([float(r[f"test_{m}"]) for r in mine])
            summary.setdefault(model, {})[m] = values.mean()
            spread.setdefault(model, {})[m] = values.std()
            cells.append(f"{summary[model][m]:.4f} ± {spread[model][m]:.4f}")
        base = model.split("@")[0].removeprefix("recbole.")
        cells += [f"{published['rows'][base][m]:.4f}" if m in published["rows"].get(base, {}) else ""
                  for m in paper_metrics]
        mean = lambda k: np.mean([float(r[k]) for r in mine])  # noqa: E731
        out.append(f"| {model} | {len(mine)} | {epochs(mine)} | " + " | ".join(cells) +
                   f" | {mean('seconds_per_epoch'):.2f} | {mean('total_seconds'):.0f} | {params(mean('params'))} |"
                   f" {mean('peak_host_mb'):.0f} |")
    if paper_metrics:
        out += ["", f"Paper columns: {published['source']}"]
    sys.path.insert(0, str(REPO))
    from recbole_diffrec.registry import model_classes

    ours = [m for m in models if m.split("@")[0] in model_classes()]
    baselines = [m for m in models if m not in ours]
    if ours and baselines:
        out += ["", "## Against the baselines", ""]
        cutoff = (rank_by or "@20").split("@")[1]  # the cut-off of the ranking metric (default 20), every metric at it
        for metric in [m for m in metrics if m.endswith(f"@{cutoff}")] or metrics[-2:]:
            best = max(baselines, key=lambda m: summary[m][metric])
            for m in ours:
                verdict = "beats" if summary[m][metric] > summary[best][metric] else "does NOT beat"
                out.append(f"- {m} {verdict} the best baseline on test {metric} ({best}): "
                           f"{summary[m][metric]:.4f} vs {summary[best][metric]:.4f}")
    out += ["", "## Settings of each row", ""]
    for model in models:
        r = [r for r in rows if r["model"] == model][0]
        out.append(f"- **{model}**: config files `{r['config_files']}`; overrides `{r['settings']}`; "
                   f"seeds {', '.join(sorted((x['seed'] for x in rows if x['model'] == model), key=int))}")
    md = csv_path.with_suffix(".md")
    md.write_text("\n".join(out) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install '.[bench]')")
        return
    plt.close(plot_summary(dataset, summary, spread, ours, baselines, csv_path.with_suffix(".png"), plt, metrics,
                           rank_by))


def plot_summary(dataset, summary, spread, ours, baselines, path, plt, metrics=METRICS, rank_by=None):
    """One panel per metric, one line per row, best test ``rank_by`` (default Recall@20, else the second
    metric) at the top: a dot at the mean over seeds with a bar of +- one standard deviation,
    recbole-diffrec's rows in colour and the baselines in grey, and a dashed line at the best baseline of each
    metric. Dots on an axis fitted to the values (not bars from zero) so that differences of a few percent
    stay visible with dozens of rows."""
    rank_by = rank_by or ("recall@20" if "recall@20" in metrics else metrics[min(1, len(metrics) - 1)])
    order = sorted(summary, key=lambda m: summary[m][rank_by])  # plotted bottom-up: best at the top
    fig, axes = plt.subplots(1, len(metrics), sharey=True, figsize=(3.6 * len(metrics), 1.4 + 0.3 * len(order)))
    for ax, metric in zip(axes, metrics):
        for y, model in enumerate(order):
            ax.errorbar(summary[model][metric], y, xerr=spread[model][metric], fmt="o", capsize=2, markersize=4,
                        color="tab:blue" if model in ours else "tab:gray")
        if baselines:
            best = max(summary[m][metric] for m in baselines)
            ax.axvline(best, color="tab:gray", linestyle="--", linewidth=1)
        ax.set_title(metric)
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(order) - 0.3)
    axes[0].set_yticks(range(len(order)), order)
    legend = "blue: recbole-diffrec; grey, dashed: baselines and the best of them" if baselines else "recbole-diffrec"
    fig.suptitle(f"{dataset}: test metrics, mean ± std over seeds ({legend})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--config_files", nargs="+", default=[str(REPO / "dataset_configs" / "ml-1m_clean.yaml")])
    parser.add_argument("--models", nargs="+", default=["DiffRec", "TDiffRec", "LDiffRec", "recbole.DiffRec",
                                                         "EASE", "MultiVAE", "LightGCN", "BPR", "ItemKNN", "Pop"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--results_dir", default=str(REPO / "results"), help="where the csv, md and png go")
    parser.add_argument("--workdir", default=str(REPO), help="the runs' working folder (their log/ and saved/); "
                        "relative paths in the config files, such as data_path, are read from it")
    parser.add_argument("--table", default=None, help="name of the results files (default: the dataset's)")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help=f"the table's metrics, as RecBole names them (default: {' '.join(METRICS)}, or the CSV's)")
    parser.add_argument("--rank_by", default=None, help="the metric that orders the chart's rows")
    parser.add_argument("--paper", default=None, help="yaml of published numbers to show beside ours")
    parser.add_argument("--notes", default=None, help="markdown put under the table's intro")
    parser.add_argument("--report_only", action="store_true", help="rebuild the md/png from the CSV")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config_files = [str(Path(f).resolve()) for f in args.config_files]
    if args.child:
        model, seed = args.child[0], int(args.child[1])
        extra = model_settings(args.dataset, model)
        harness.emit(child(model, seed, args.dataset, config_files, extra))
        return
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    csv_path = results / f"{args.table or args.dataset}.csv"
    metrics = args.metrics or (csv_metrics(csv_path) if csv_path.exists() else METRICS)
    if not args.report_only:
        done = {(r["model"], r["seed"]) for r in csv.DictReader(open(csv_path))} if csv_path.exists() else set()
        jobs = [(m, s) for m in args.models for s in args.seeds if (m, str(s)) not in done]
        for n, (model, seed) in enumerate(jobs, 1):
            print(f"[{n}/{len(jobs)}] {model} seed {seed} ...", flush=True)
            code, row, tail = run_child(model, seed, args.dataset, config_files, args.workdir)
            if code or row is None:
                print(f"    FAILED ({code}): {tail[-1:]}", flush=True)
                continue
            missing = [m for m in metrics if f"test_{m}" not in row]
            if missing:
                print(f"    FAILED: the run reported no {', '.join(missing)} (its config's metrics and topk)")
                continue
            print("    test " + " ".join(f"{label(m)} {row[f'test_{m}']:.4f}" for m in metrics) +
                  f" ({row['epochs']} epochs, {row['total_seconds']:.0f} s)", flush=True)
            new = not csv_path.exists()
            with open(csv_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields(metrics) if new else csv_fields(csv_path),
                                        extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
    if not csv_path.exists():
        raise SystemExit(f"no results for {args.dataset} yet ({csv_path} does not exist)")
    write_report(args.dataset, csv_path, metrics, args.rank_by, args.paper, args.notes)
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
