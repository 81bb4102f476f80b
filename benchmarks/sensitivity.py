"""Sensitivity and ablation studies: one setting varied at a time, several seeds per point, every point
trained to early stop, selected on validation and reported on test.

One sweep from the command line:

    python benchmarks/sensitivity.py --study diffrec --model DiffRec --key noise_scale \
        --values 0.0005 0.001 0.005 0.01 0.05 --seeds 2020 2021 2022 \
        --dataset ml-1m_clean --config_files dataset_configs/ml-1m_clean.yaml --base DiffRec

or a whole study from a plan (sweeps, ablations and the sentence on what the paper reports beside each):

    python benchmarks/sensitivity.py --plan benchmarks/studies/diffrec.yaml

Results go to results/analysis/<study>.csv (one row per trained point and seed, appended as each ends),
and .md / .png are rebuilt from it. A point already in the csv (same model, settings and seed) is not run
again, so a study grows run by run and sweeps share their default point. Keys a saved model may change on
evaluation (``may change on evaluate`` in the model's yaml: inference_steps, sampling_steps, ...) are not
retrained: the sweep's other values are evaluated on the default point's trained model, in the same child.

``--base`` names the row of benchmarks/configs/<dataset>/ whose settings every point starts from
(harness.variant_settings); the default of a key is the base's value, else the model's declared default.
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import harness
import tables

# The study's metrics (a plan's `metrics`), the first the one a point is selected and charted by, the first two
# in the ablation table; RecBole's names, lower case. The general models' by default.
METRICS = ["recall@20", "ndcg@20", "recall@10", "ndcg@10"]
SHORT = {"recall": "R", "ndcg": "N", "hit": "HR", "mrr": "MRR", "precision": "P"}
PROTOCOL = ("RecBole's Recall@k: hits / |test items|; NDCG@k over full ranking, training and validation items "
            "masked")


def columns():
    return ["model", "settings", "eval_settings", "seed", *[f"test_{m}" for m in METRICS],
            *[f"valid_{m}" for m in METRICS], "epochs", "epoch_budget", "seconds_per_epoch", "total_seconds",
            "params", "peak_host_mb", "config_files"]


def metric_label(metric):
    name, _, k = metric.partition("@")
    return f"{SHORT.get(name, name)}@{k}"


def use_metrics(plan):
    """Set the study's metrics and the sentence defining them from its plan."""
    global METRICS, PROTOCOL
    METRICS = [m.lower() for m in plan.get("metrics", METRICS)]
    PROTOCOL = plan.get("protocol", PROTOCOL).strip()


def canonical(settings):
    return json.dumps(settings, sort_keys=True)


def declared_default(model, key):
    sys.path.insert(0, str(harness.REPO))
    from recbole_diffrec.registry import get_model
    from recbole_diffrec.settings import declarations

    found = declarations(get_model(model))
    return found[key].default if key in found else None


def evaluate_only(model, key):
    sys.path.insert(0, str(harness.REPO))
    from recbole_diffrec.registry import get_model
    from recbole_diffrec.settings import may_change

    return key in may_change(get_model(model), "evaluate")


class Sweep:
    """One key of one model over several values; each value a point (model, training settings, evaluation
    settings). A value equal to the default trains with the base settings alone, so sweeps share it.
    The key ``row`` varies the whole row instead: each value names a row of benchmarks/configs/<dataset>/
    (``Model`` or ``Model@variant``), which is how an ablation swaps a model or a group of settings."""

    def __init__(self, dataset, key, values, model=None, base=None, note="", title=None, ablation=None,
                 common=None):
        self.common = dict(common or {})  # the plan's settings for every point (e.g. the metrics)
        self.dataset, self.key, self.values, self.note, self.ablation = dataset, key, list(values), note, ablation
        if key == "row":
            self.model, self.base, self.default, self.eval_only = None, {}, values[0], False
        else:
            self.model = model
            self.base = harness.variant_settings(dataset, base) if base else {}
            self.default = self.base.get(key, declared_default(model, key))
            self.eval_only = evaluate_only(model, key)
        self.title = title or (ablation if ablation else f"{model}: `{key}`")

    def point(self, value):
        """(model, training settings, evaluation settings) of a value."""
        base = {**self.common, **self.base}
        if self.key == "row":
            return harness.model_of(value), {**self.common, **harness.variant_settings(self.dataset, value)}, {}
        if value == self.default:
            return self.model, base, {}
        if self.eval_only:
            return self.model, base, {self.key: value}
        return self.model, {**base, self.key: value}, {}


def load_rows(csv_path):
    return list(csv.DictReader(open(csv_path))) if csv_path.exists() else []


def append_rows(csv_path, rows):
    new = not csv_path.exists()
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def row_key(model, settings, eval_settings, seed):
    return (model, canonical(settings), canonical(eval_settings), str(seed))


def run_points(sweeps, seeds, dataset, config_files, csv_path):
    """Train every (model, training settings, seed) that some sweep needs and the csv lacks; each child
    also evaluates the evaluation-only points that ride on its training."""
    jobs = {}
    for sweep in sweeps:
        for value in sweep.values:
            model, settings, eval_settings = sweep.point(value)
            jobs.setdefault((model, canonical(settings)), [model, settings, []])
            if eval_settings and eval_settings not in jobs[(model, canonical(settings))][2]:
                jobs[(model, canonical(settings))][2].append(eval_settings)
    for n, (model, settings, evals) in enumerate(jobs.values(), 1):
        for seed in seeds:
            done = {(r["model"], r["settings"], r["eval_settings"], r["seed"]) for r in load_rows(csv_path)}
            wanted = [{}, *evals]
            missing = [e for e in wanted if row_key(model, settings, e, seed) not in done]
            if not missing:
                continue
            # a new evaluation variant of a trained point retrains it: the study keeps no checkpoints
            label = f"{model} {canonical(settings)} seed {seed}"
            print(f"[{n}/{len(jobs)}] {label} (+{len(evals)} evaluation variants)", flush=True)
            code, result, tail = harness.run_child(
                [__file__, "--child", json.dumps({"model": model, "settings": settings, "evals": evals,
                                                  "seed": seed, "dataset": dataset,
                                                  "config_files": config_files})], label, echo=False)
            if code or result is None:
                print(f"    FAILED ({code}): {tail[-3:]}", flush=True)
                continue
            rows = [r for r in result["rows"] if row_key(model, settings, json.loads(r["eval_settings"]), seed)
                    not in done]
            append_rows(csv_path, rows)
            base = result["rows"][0]
            print(f"    test {metric_label(METRICS[0])} {base.get(f'test_{METRICS[0]}', float('nan')):.4f} "
                  f"{metric_label(METRICS[1])} {base.get(f'test_{METRICS[1]}', float('nan')):.4f} "
                  f"({base['epochs']} epochs, {base['total_seconds']:.0f} s)", flush=True)


def child(spec):
    """Train one point, then evaluate it as is and under each evaluation-only variant."""
    import time

    model, settings, seed = spec["model"], spec["settings"], spec["seed"]
    sys.path.insert(0, str(harness.REPO))
    from recbole_diffrec.pipeline import prepare

    config, (train_data, valid_data, test_data), net, trainer = prepare(
        model, spec["dataset"], spec["config_files"], {"seed": seed, "show_progress": False, "state": "WARNING",
                                                       **settings})
    harness.report_progress()
    start = time.perf_counter()
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - start
    epochs = max(len(trainer.train_loss_dict), 1)
    common = {"model": model, "settings": canonical(settings), "seed": seed, "epochs": epochs,
              "epoch_budget": config["epochs"], "seconds_per_epoch": fit_seconds / epochs,
              "total_seconds": fit_seconds, "params": sum(p.numel() for p in net.parameters()),
              "config_files": " ".join(os.path.relpath(f, harness.REPO) for f in spec["config_files"])}

    def row(eval_settings, valid_result, test_result):
        return {**common, "eval_settings": canonical(eval_settings),
                **{f"test_{k}": float(v) for k, v in test_result.items()},
                **{f"valid_{k}": float(v) for k, v in valid_result.items()}, "peak_host_mb": harness.peak_host_mb()}

    rows = [row({}, trainer.best_valid_result or {}, trainer.evaluate(test_data, load_best_model=True))]
    original = dict(net.settings)
    for variant in spec["evals"]:  # the best model is loaded now; only the evaluation setting changes
        net.settings.update(variant)
        rows.append(row(variant, trainer.evaluate(valid_data, load_best_model=False),
                        trainer.evaluate(test_data, load_best_model=False)))
        net.settings.update(original)
    harness.emit({"rows": rows})


def summarise(rows, model, settings, eval_settings):
    """Mean, std and the runs of one point, from the csv rows."""
    import numpy as np

    mine = [r for r in rows if (r["model"], r["settings"], r["eval_settings"]) ==
            (model, canonical(settings), canonical(eval_settings))]
    if not mine:
        return None
    out = {"n": len(mine), "seeds": sorted(int(r["seed"]) for r in mine)}
    for m in METRICS:
        for split in ("test", "valid"):
            values = np.array([float(r[f"{split}_{m}"]) for r in mine])
            out[f"{split}_{m}"] = (values.mean(), values.std())
            out[f"{split}_{m}_runs"] = values.tolist()
    out["epochs"] = sorted({int(r["epochs"]) for r in mine})
    for k in ("seconds_per_epoch", "total_seconds", "params", "peak_host_mb"):
        out[k] = float(np.mean([float(r[k]) for r in mine]))
    return out


def seed_verdict(point, reference):
    """The tables' verdict (benchmarks/tables.py: Welch's t-test across seeds, p < 0.05) of one point's test
    runs against another's, on the first metric: ahead, level, behind or one seed, with the p value."""
    word, test = tables.verdict(point[f"test_{METRICS[0]}_runs"], reference[f"test_{METRICS[0]}_runs"])
    return word if test is None else f"{word} (p {test[3]:.3f})" if test[3] >= 0.001 else f"{word} (p <0.001)"


def fmt(value):
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)


def write_report(plan, sweeps, csv_path):
    rows = load_rows(csv_path)
    out = [f"# {plan.get('title', plan['study'])}", "", plan.get("intro", "").strip(), "",
           f"Test metrics of the model selected on validation {metric_label(METRICS[0])} ({PROTOCOL}), mean ± std "
           f"over "
           f"seeds; **bold** marks "
           f"the default. Verdicts (a value against the default, an addition against its absence): Welch's "
           f"t-test across seeds, p < 0.05, as the tables (benchmarks/tables.py). Produced by "
           f"`python benchmarks/sensitivity.py --plan {plan['path']}` from "
           f"[{csv_path.name}]({csv_path.name}). Epochs: trained per seed (early stop). Machine: {harness.cpu()}.", ""]
    ablations = [s for s in sweeps if s.ablation]
    if ablations:
        out += ["## Ablation: each addition switched off", "",
                "| what | with | without | " + " | ".join(
                    f"{metric_label(m)} with | {metric_label(m)} without | Δ {metric_label(m)}" for m in METRICS[:2])
                + f" | with against without, {metric_label(METRICS[0])} | seeds |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for sweep in ablations:
            on, off = (summarise(rows, *sweep.point(v)) for v in sweep.values[:2])
            if on is None or off is None:
                out.append(f"| {sweep.ablation} | {fmt(sweep.values[0])} | {fmt(sweep.values[1])} | not run yet |"
                           " | | | | | |")
                continue
            cells = []
            for m in METRICS[:2]:
                a, b = on[f"test_{m}"], off[f"test_{m}"]
                cells.append(f"{a[0]:.4f} ± {a[1]:.4f} | {b[0]:.4f} ± {b[1]:.4f} | {(a[0] - b[0]) / b[0]:+.1%}")
            out.append(f"| {sweep.ablation} | {fmt(sweep.values[0])} | {fmt(sweep.values[1])} | {' | '.join(cells)} | "
                       f"{seed_verdict(on, off)} | {min(on['n'], off['n'])} |")
        out += [""] + [f"- **{s.ablation}**: {s.note}" for s in ablations if s.note] + [""]
    out += ["## Sensitivity", ""]
    for sweep in [s for s in sweeps if not s.ablation]:
        kind = " (evaluation only: one trained model per seed, evaluated at each value)" if sweep.eval_only else ""
        out += [f"### {sweep.title}{kind}", ""]
        if sweep.note:
            out += [sweep.note, ""]
        out += ["| value | " + " | ".join(map(metric_label, METRICS)) + f" | against the default, "
                f"{metric_label(METRICS[0])} | valid {metric_label(METRICS[0])} | epochs | s/epoch | params | peak MB | "
                "seeds |", "|---|" + "---|" * len(METRICS) + "---|---|---|---|---|---|---|"]
        for value in sweep.values:
            s = summarise(rows, *sweep.point(value))
            name = f"**{fmt(value)}**" if value == sweep.default else fmt(value)
            if s is None:
                out.append(f"| {name} | not run yet |" + " |" * (len(METRICS) + 6))
                continue
            cells = " | ".join(f"{s[f'test_{m}'][0]:.4f} ± {s[f'test_{m}'][1]:.4f}" for m in METRICS)
            default = summarise(rows, *sweep.point(sweep.default)) if sweep.default in sweep.values else None
            against = "default" if value == sweep.default else (seed_verdict(s, default) if default else "")
            out.append(f"| {name} | {cells} | {against} | {s[f'valid_{METRICS[0]}'][0]:.4f} | "
                       f"{'/'.join(map(str, s['epochs']))} | {s['seconds_per_epoch']:.2f} | {int(s['params']):,} | "
                       f"{s['peak_host_mb']:.0f} | {s['n']} |")
        out.append("")
    out += ["## Settings", "", f"Dataset `{plan['dataset']}`, config files `{' '.join(plan['config_files'])}`, "
            f"seeds {', '.join(map(str, plan['seeds']))}. Each sweep starts from the row of "
            f"`benchmarks/configs/{plan['dataset']}/` named below and changes one key.", ""]
    for sweep in sweeps:
        start = f"rows {', '.join(sweep.values)}" if sweep.key == "row" else f"base row `{sweep.model}` settings " \
            f"`{canonical(sweep.base)}`"
        out.append(f"- {sweep.title}: {start}")
    csv_path.with_suffix(".md").write_text("\n".join(out) + "\n")
    plot(sweeps, rows, csv_path.with_suffix(".png"))


def plot(sweeps, rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install '.[bench]')")
        return
    curves = [s for s in sweeps if not s.ablation and any(summarise(rows, *s.point(v)) for v in s.values)]
    if not curves:
        return
    cols = 4
    fig, axes = plt.subplots((len(curves) + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((len(curves) + cols - 1) // cols)),
                             squeeze=False)
    for ax, sweep in zip(axes.flat, curves):
        xs, means, stds, marks = [], [], [], []
        for i, value in enumerate(sweep.values):
            s = summarise(rows, *sweep.point(value))
            if s is None:
                continue
            xs.append(i)
            means.append(s[f"test_{METRICS[0]}"][0])
            stds.append(s[f"test_{METRICS[0]}"][1])
            marks.append(value == sweep.default)
        ax.errorbar(xs, means, yerr=stds, fmt="o-", capsize=3, markersize=4)
        for x, m, default in zip(xs, means, marks):
            if default:
                ax.plot([x], [m], "r*", markersize=12, label="default")
        ax.set_xticks(range(len(sweep.values)), [fmt(v) for v in sweep.values], fontsize=7, rotation=20)
        ax.set_title(sweep.title.replace("`", ""), fontsize=9)
        ax.set_ylabel(f"test {metric_label(METRICS[0])}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(f"Test {metric_label(METRICS[0])}, mean ± std over seeds (red star: the default)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_plan(path):
    import yaml

    plan = yaml.safe_load(Path(path).read_text())
    plan["path"] = str(Path(path).resolve().relative_to(harness.REPO)) if Path(path).resolve().is_relative_to(
        harness.REPO) else str(path)
    return plan


def make_sweeps(plan, only=None):
    sweeps = []
    sweeps_first = [e for e in plan.get("sweeps", []) if not e.get("later")]
    sweeps_later = [e for e in plan.get("sweeps", []) if e.get("later")]
    for entry in sweeps_first + plan.get("ablations", []) + sweeps_later:  # the run order
        sweep = Sweep(plan["dataset"], entry["key"], entry["values"], entry.get("model"), entry.get("base"),
                      entry.get("note", ""), entry.get("title"), entry.get("name"), plan.get("settings"))
        if only is None or sweep.title in only or entry["key"] in only:
            sweeps.append(sweep)
    return sweeps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", help="a study's yaml: study, dataset, config_files, seeds, sweeps, ablations")
    parser.add_argument("--only", nargs="+", help="with --plan: run only these sweeps (by key or title)")
    parser.add_argument("--study", help="name of the results files (results/analysis/<study>.*)")
    parser.add_argument("--model")
    parser.add_argument("--key")
    parser.add_argument("--values", nargs="+", help="values, read as yaml (0.5, True, [200, 600], ...)")
    parser.add_argument("--base", help="the row of benchmarks/configs/<dataset>/ the points start from")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--config_files", nargs="+", default=["dataset_configs/ml-1m_clean.yaml"])
    parser.add_argument("--results_dir", default=str(harness.REPO / "results" / "analysis"))
    parser.add_argument("--report_only", action="store_true", help="rebuild the md/png from the csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    import yaml

    if args.plan:
        plan = load_plan(args.plan)
    else:
        if not (args.study and args.model and args.key and args.values):
            parser.error("without --plan, --study, --model, --key and --values are required")
        plan = {"study": args.study, "dataset": args.dataset, "config_files": args.config_files, "seeds": args.seeds,
                "path": "(command line)", "sweeps": [{"model": args.model, "key": args.key, "base": args.base,
                                                      "values": [yaml.safe_load(v) for v in args.values]}]}
    use_metrics(plan)
    sweeps = make_sweeps(plan, args.only)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    csv_path = results / f"{plan['study']}.csv"
    config_files = [str((harness.REPO / f).resolve()) for f in plan["config_files"]]
    if not args.report_only:
        run_points(sweeps, plan["seeds"], plan["dataset"], config_files, csv_path)
    if not csv_path.exists():
        raise SystemExit(f"no results yet ({csv_path} does not exist)")
    write_report(plan, make_sweeps(plan), csv_path)
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
