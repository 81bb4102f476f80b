"""Results pages: the table specs (benchmarks/tables/<name>.yaml), the verdicts the seeds support, and the page
built from a results CSV.

A spec names everything a page reruns from: the dataset and how to make it, the config files (the protocol),
the metrics, the ranking metric, the seeds, the notes, and every row (``Model`` or ``Model@variant``, whose
settings are benchmarks/configs/<dataset>/<row>.yaml), with its own seeds where they differ.

The verdict of a recbole-diffrec row against the best baseline (the baseline row with the highest mean ranking
metric): Welch's t-test across seeds, two-sided, p < 0.05 gives **ahead** or **behind**, otherwise **level**;
where neither row varies across its seeds (deterministic models), the sign of the difference decides; a row
with one seed gets **one seed** and no verdict. A baseline with one seed counts as having no spread.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "benchmarks" / "tables"
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
SHORT = {"recall": "R", "ndcg": "N", "hit": "HR", "precision": "P", "mrr": "MRR"}
VERDICTS = ("ahead", "level", "behind", "one seed")
ALPHA = 0.05
RULE = ("**Verdicts.** Each recbole-diffrec row is compared with the best baseline (the baseline row with the "
        "highest mean {metric}) on test {metric}: Welch's t-test across seeds, two-sided; p < 0.05 gives "
        "**ahead** or **behind**, otherwise **level**. Where neither row varies across its seeds "
        "(deterministic models), the sign of the difference decides. A row with a single seed gets **one seed** "
        "and no verdict. Δ is the row's mean minus the baseline's, with its 95% confidence interval "
        "(Welch-Satterthwaite degrees of freedom); ± is the sample standard deviation over seeds.")


def label(metric: str) -> str:
    name, k = metric.split("@")
    return f"{SHORT.get(name, name)}@{k}"


# ---- specs --------------------------------------------------------------------------------------------------
def spec_path(name: str) -> Path:
    return TABLES / f"{name}.yaml"


def load_spec(name: str) -> dict:
    """The spec of table `name`, its rows as {row: {"seeds": [...]}} in the spec's order."""
    import yaml

    path = spec_path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TABLES.glob("*.yaml")))
        raise SystemExit(f"compare.py: error: no table spec {path} (specs: {known})")
    spec = yaml.safe_load(path.read_text())
    for key in ("dataset", "config_files", "rows"):
        if key not in spec:
            raise SystemExit(f"compare.py: error: {path} has no {key!r}")
    seeds = list(spec.get("seeds", [2020, 2021, 2022]))
    rows = {}
    for entry in spec["rows"]:
        name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        options = options or {}
        rows[name] = {"seeds": list(options.get("seeds", seeds)), "command": options.get("command")}
    spec.update(name=name_of(path), seeds=seeds, rows=rows, metrics=spec.get("metrics", METRICS),
                rank_by=spec.get("rank_by", "recall@20"))
    return spec


def name_of(path: Path) -> str:
    return path.stem


def all_specs() -> dict[str, dict]:
    return {p.stem: load_spec(p.stem) for p in sorted(TABLES.glob("*.yaml"))}


# ---- verdicts -----------------------------------------------------------------------------------------------
def welch(row: list[float], base: list[float]) -> tuple[float, float, float, float]:
    """(difference of means, its 95% interval low and high, two-sided p) of Welch's t-test; a sample of one
    counts as having no spread. With no spread on either side, p is 0 for a difference and 1 for none."""
    from scipy import stats

    a, b = np.asarray(row, float), np.asarray(base, float)
    diff = float(a.mean() - b.mean())
    parts = [x.var(ddof=1) / len(x) if len(x) > 1 else 0.0 for x in (a, b)]
    se2 = sum(parts)
    if se2 <= 0:
        return diff, diff, diff, (0.0 if diff != 0 else 1.0)
    df = se2 ** 2 / sum(v ** 2 / (len(x) - 1) for v, x in zip(parts, (a, b)) if v > 0)
    se = math.sqrt(se2)
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    half = float(stats.t.ppf(0.975, df) * se)
    return diff, diff - half, diff + half, p


def verdict(row: list[float], base: list[float]) -> tuple[str, tuple | None]:
    """One of VERDICTS, and (difference, low, high, p) where a test was made."""
    if len(row) < 2:
        return "one seed", None
    diff, low, high, p = welch(row, base)
    if p >= ALPHA:
        return "level", (diff, low, high, p)
    return ("ahead" if diff > 0 else "behind"), (diff, low, high, p)


# ---- settings shown on the page ---------------------------------------------------------------------------
def model_defaults(model: str) -> dict:
    """The settings a row's model takes by default: its yaml files (the pack's) or RecBole's model yaml and
    overall defaults."""
    sys.path.insert(0, str(REPO))
    import yaml

    from recbole_diffrec.registry import get_model, is_ours
    from recbole_diffrec.settings import declared_settings

    try:
        cls = get_model(model)
    except Exception:  # noqa: BLE001 - a row of a model this checkout no longer has
        return {}
    if is_ours(cls):
        return dict(declared_settings(cls))
    import recbole

    root = Path(recbole.__file__).parent / "properties"
    name = model.removeprefix("recbole.")
    defaults = {}
    for path in (root / "overall.yaml", root / "model" / f"{name}.yaml"):
        if path.is_file():
            defaults.update(yaml.safe_load(path.read_text()) or {})
    return defaults


def differing(model: str, settings: dict) -> dict:
    """The keys of a row's settings whose value is not its model's default."""
    defaults = model_defaults(model)
    return {k: v for k, v in settings.items() if k not in defaults or defaults[k] != v}


# ---- the page -----------------------------------------------------------------------------------------------
def csv_fields(csv_path) -> list[str]:
    with open(csv_path) as handle:
        return next(csv.reader(handle))


def csv_metrics(csv_path) -> list[str]:
    return [f[len("test_"):] for f in csv_fields(csv_path) if f.startswith("test_")]


def is_ours(row: str) -> bool:
    sys.path.insert(0, str(REPO))
    from recbole_diffrec.registry import model_classes

    return row.split("@")[0] in model_classes()


def summarise(rows: list[dict], metrics: list[str], rank_by: str):
    """Per table row: its seeds' values of each metric, mean, sample std; the best baseline; the verdicts."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    values = {n: {m: [float(r[f"test_{m}"]) for r in rows if r["model"] == n] for m in metrics} for n in names}
    mean = {n: {m: float(np.mean(v)) for m, v in values[n].items()} for n in names}
    std = {n: {m: (float(np.std(v, ddof=1)) if len(v) > 1 else None) for m, v in values[n].items()} for n in names}
    ours = [n for n in names if is_ours(n)]
    baselines = [n for n in names if n not in ours]
    best = max(baselines, key=lambda n: mean[n][rank_by]) if baselines else None
    verdicts = {n: verdict(values[n][rank_by], values[best][rank_by]) for n in ours} if best else {}
    order = sorted(names, key=lambda n: -mean[n][rank_by])
    return {"names": order, "values": values, "mean": mean, "std": std, "ours": ours, "baselines": baselines,
            "best": best, "verdicts": verdicts}


def cell(s, name, metric):
    sd = s["std"][name][metric]
    return f"{s['mean'][name][metric]:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def delta_cell(test):
    if test is None:
        return ""
    diff, low, high, p = test
    return f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]", (f"{p:.3f}" if p >= 0.001 else "<0.001")


def write_report(title, csv_path, metrics=None, rank_by=None, paper=None, notes=None, intro=None, rebuild=None):
    """<csv>.md and .png from the CSV: a summary (the rows above the best baseline, the best baseline, the
    verdicts), the full table sorted by `rank_by`, the notes, and each row's settings that differ from its
    model's defaults. ``paper``: yaml {source, rows: {row: {metric: value}}} of published numbers shown
    beside ours; ``notes``: a markdown file; ``intro``: the protocol's sentence; ``rebuild``: the command."""
    import yaml

    csv_path = Path(csv_path)
    metrics = metrics or csv_metrics(csv_path)
    rank_by = rank_by or ("recall@20" if "recall@20" in metrics else metrics[min(1, len(metrics) - 1)])
    rows = list(csv.DictReader(open(csv_path)))
    s = summarise(rows, metrics, rank_by)
    published = yaml.safe_load(Path(paper).read_text()) if paper else {"rows": {}}
    paper_metrics = list(dict.fromkeys(m for v in published["rows"].values() for m in v))
    rank = label(rank_by)
    out = [f"# {title}", ""]
    out += [(intro or "Test metrics over seeds (full ranking; model selection on validation).") +
            " Produced by `benchmarks/compare.py`" + (f": `{rebuild}` reruns what is missing and rebuilds this "
                                                      "page." if rebuild else "."), ""]
    best = s["best"]
    if best:
        counts = {w: [n for n in s["ours"] if s["verdicts"][n][0] == w] for w in VERDICTS}
        out += ["## Summary", "",
                f"Ranked by test {rank}. Best baseline: **{best}** ({cell(s, best, rank_by)}). "
                f"recbole-diffrec's {len(s['ours'])} rows: " +
                ", ".join(f"{len(counts[w])} {w}" for w in VERDICTS) + ".", ""]
        top = s["names"][:s["names"].index(best) + 1]
        out += [f"| row | seeds | {rank} | Δ {rank} vs {best} [95% CI] | p | verdict |", "|---|---|---|---|---|---|"]
        for name in top:
            word, test = s["verdicts"].get(name, ("baseline", None))
            d = delta_cell(test) or ("", "")
            out.append(f"| {name} | {len(s['values'][name][rank_by])} | {cell(s, name, rank_by)} | {d[0]} | {d[1]} "
                       f"| {word if name in s['ours'] else ('best baseline' if name == best else 'baseline')} |")
        for word in ("behind", "one seed"):
            if counts[word]:
                out.append("")
                out.append(f"**{word}** ({len(counts[word])}): " + ", ".join(counts[word]) + ".")
        out += ["", RULE.format(metric=rank), ""]
    out += ["## All rows", ""]
    paper_cells = [f"paper {label(m)}" for m in paper_metrics]
    verdict_cells = ["verdict", f"Δ {rank} [95% CI]", "p"] if best else []
    header = ["model", "seeds", "epochs", *map(label, metrics), *paper_cells, *verdict_cells, "s/epoch", "total s",
              "params", "peak MB"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in s["names"]:
        mine = [r for r in rows if r["model"] == name]
        base = name.split("@")[0].removeprefix("recbole.")
        cells = [cell(s, name, m) for m in metrics]
        cells += [f"{published['rows'][base][m]:.4f}" if m in published["rows"].get(base, {}) else ""
                  for m in paper_metrics]
        if best:
            word, test = s["verdicts"].get(name, ("best baseline" if name == best else "baseline", None))
            cells += [word, *(delta_cell(test) or ("", ""))]

        def mean(key):
            return np.mean([float(r[key]) for r in mine])

        params = mean("params")
        out.append(f"| {name} | {len(mine)} | {epochs(mine)} | " + " | ".join(cells) +
                   f" | {mean('seconds_per_epoch'):.2f} | {mean('total_seconds'):.0f} | "
                   f"{f'{int(params):,}' if params > 1 else 'n/a'} | {mean('peak_host_mb'):.0f} |")
    out += ["", "Epochs: trained / the row's budget (fewer: early stop). Rows of recbole-diffrec's models without "
            "`train_precision` in their settings ran with the default, `auto`: bfloat16 autocast of the training "
            "step on a CPU with native bfloat16, float32 elsewhere. params n/a: RecBole's non-parametric models."]
    if paper_metrics:
        out += ["", f"Paper columns: {published['source']}"]
    if notes:
        out += ["", "## Notes", "", Path(notes).read_text().strip()]
    out += ["", "## Settings of each row", "",
            "The keys where a row differs from its model's defaults (`properties/` for recbole-diffrec's models, "
            "RecBole's model yaml and overall defaults for RecBole's), as of the commit that added the row.", ""]
    for name in s["names"]:
        mine = [r for r in rows if r["model"] == name]
        settings = json.loads(mine[0]["settings"] or "{}")
        shown = differing(name.split("@")[0], settings)
        seeds = ", ".join(sorted((r["seed"] for r in mine), key=int))
        out.append(f"- **{name}**: `{json.dumps(shown, sort_keys=True)}`; config files `{mine[0]['config_files']}`; "
                   f"seeds {seeds}")
    csv_path.with_suffix(".md").write_text("\n".join(out) + "\n")
    chart(title, s, metrics, rank_by, csv_path.with_suffix(".png"))
    return s


def epochs(mine):
    trained = sorted({int(float(r["epochs"])) for r in mine})
    budgets = {r.get("epoch_budget") or "" for r in mine}
    text = "/".join(map(str, trained)) if len(trained) <= 3 else f"{trained[0]}-{trained[-1]}"
    return f"{text} / {int(float(budgets.pop()))}" if len(budgets) == 1 and "" not in budgets else text


def chart(title, s, metrics, rank_by, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install '.[bench]')")
        return
    spread = {n: {m: (v or 0.0) for m, v in s["std"][n].items()} for n in s["names"]}
    plt.close(plot_summary(title, s["mean"], spread, s["ours"], s["baselines"], path, plt, metrics, rank_by))


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
