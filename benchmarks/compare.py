"""Side-by-side tables: rows (models and their variants) by seeds, on one dataset and one protocol.

A table is a spec, benchmarks/tables/<name>.yaml (:mod:`tables`): its dataset, config files, metrics, seeds and
rows. One command reruns what its CSV lacks and rebuilds the page:

    python benchmarks/compare.py --table ml-1m_clean                 # every (row, seed) not yet in the csv
    python benchmarks/compare.py --table ml-1m_clean --dry-run       # what that would run, and for how long
    python benchmarks/compare.py --table ml-1m_clean --rows EASE --seeds 2020 --results_dir /tmp/t
    python benchmarks/compare.py --report_only --results_dir results --table beauty   # the page from the csv

Every (row, seed) runs in its own subprocess (so its peak memory is its own and a crash loses only that run)
and is appended to <results_dir>/<table>.csv as soon as it ends; the page (<table>.md) and its chart (.png)
are rebuilt from the CSV at the end. A row's settings are benchmarks/configs/<dataset>/<row>.yaml
(``Model@variant`` runs Model with that file; ``base:`` in it starts from another row). Without a spec,
``--dataset/--config_files/--models`` run an ad hoc table as before.
"""

import argparse
import csv
from pathlib import Path

import harness
import tables
from tables import METRICS, csv_fields, csv_metrics, label, plot_summary, write_report  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parent.parent
RUN_FIELDS = ["epochs", "seconds_per_epoch", "total_seconds", "params", "peak_host_mb", "settings", "config_files",
              "epoch_budget"]


def fields(metrics):
    return ["model", "seed", *[f"test_{m}" for m in metrics], *[f"valid_{m}" for m in metrics], *RUN_FIELDS]


FIELDS = fields(METRICS)


def child(label, seed, dataset, config_files, extra):
    """One (row, seed): trained to early stop, selected on validation, tested (harness.train_to_early_stop)."""
    return {"model": label, **harness.train_to_early_stop(harness.model_of(label), seed, dataset, config_files, extra)}


def run_child(model, seed, dataset, config_files, workdir=REPO):
    """Run one (model, seed) in a subprocess; (exit code, its RESULT row or None, its stderr's last lines)."""
    return harness.run_child([__file__, "--child", model, str(seed), "--dataset", dataset, "--config_files",
                              *config_files], f"{model} seed {seed}", cwd=workdir)


model_settings = harness.variant_settings


def done_runs(csv_path):
    """{(row, seed): seconds} of the runs a CSV holds."""
    if not csv_path.exists():
        return {}
    return {(r["model"], r["seed"]): float(r["total_seconds"] or 0) for r in csv.DictReader(open(csv_path))}


def expected_seconds(row, done, reference):
    """A row's expected time: the mean of its runs in this CSV, else in the committed one."""
    for source in (done, reference):
        times = [t for (name, _), t in source.items() if name == row]
        if times:
            return sum(times) / len(times)
    return None


def run_jobs(jobs, dataset, config_files, workdir, csv_path, metrics):
    for n, (model, seed) in enumerate(jobs, 1):
        print(f"[{n}/{len(jobs)}] {model} seed {seed} ...", flush=True)
        code, row, tail = run_child(model, seed, dataset, config_files, workdir)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=None, help="a table spec's name (benchmarks/tables/<name>.yaml), or the "
                        "name of the results files of an ad hoc table")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows of the spec")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds (default: the spec's)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="list every (row, seed): done or not, and its expected time; run nothing")
    parser.add_argument("--results_dir", default=str(REPO / "results"), help="where the csv, md and png go")
    parser.add_argument("--workdir", default=str(REPO), help="the runs' working folder (their log/ and saved/); "
                        "relative paths in the config files, such as data_path, are read from it")
    parser.add_argument("--report_only", action="store_true", help="rebuild the md/png from the CSV")
    adhoc = parser.add_argument_group("an ad hoc table, without a spec")
    adhoc.add_argument("--dataset", default="ml-1m_clean")
    adhoc.add_argument("--config_files", nargs="+", default=[str(REPO / "dataset_configs" / "ml-1m_clean.yaml")])
    adhoc.add_argument("--models", nargs="+", default=None)
    adhoc.add_argument("--metrics", nargs="+", default=None,
                       help=f"the table's metrics, as RecBole names them (default: {' '.join(METRICS)}, or the CSV's)")
    adhoc.add_argument("--rank_by", default=None, help="the metric that orders the rows")
    adhoc.add_argument("--paper", default=None, help="yaml of published numbers to show beside ours")
    adhoc.add_argument("--notes", default=None, help="markdown put under the table")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, seed = args.child[0], int(args.child[1])
        config_files = [str(Path(f).resolve()) for f in args.config_files]
        harness.emit(child(model, seed, args.dataset, config_files, model_settings(args.dataset, model)))
        return
    results = Path(args.results_dir)
    spec = tables.load_spec(args.table) if args.table and tables.spec_path(args.table).is_file() else None
    if spec is not None:
        dataset, name = spec["dataset"], spec["name"]
        config_files = [str((REPO / f).resolve()) for f in spec["config_files"]]
        metrics, rank_by = spec["metrics"], spec["rank_by"]
        paper = REPO / spec["paper"] if spec.get("paper") else None
        notes = REPO / spec["notes"] if spec.get("notes") else None
        unknown = [r for r in args.rows or [] if r not in spec["rows"]]
        if unknown:
            parser.error(f"--rows: {unknown[0]!r} is not a row of {tables.spec_path(name)} "
                         f"(rows: {', '.join(spec['rows'])})")
        selected = {r: args.seeds or spec["rows"][r]["seeds"] for r in args.rows or spec["rows"]}
        elsewhere = {r: spec["rows"][r]["command"] for r in selected if spec["rows"][r]["command"]}
    else:
        if args.dry_run or args.rows:
            parser.error(f"--dry-run and --rows need a spec: no {tables.spec_path(args.table or args.dataset)}")
        dataset, name = args.dataset, args.table or args.dataset
        config_files = [str(Path(f).resolve()) for f in args.config_files]
        csv_path = results / f"{name}.csv"
        metrics = args.metrics or (csv_metrics(csv_path) if csv_path.exists() else METRICS)
        rank_by, paper, notes = args.rank_by, args.paper, args.notes
        selected = {m: args.seeds or [2020, 2021, 2022] for m in (args.models or [])}
        elsewhere = {}
    csv_path = results / f"{name}.csv"
    done = done_runs(csv_path)
    if args.dry_run:
        reference = done_runs(REPO / "results" / f"{name}.csv")
        total = 0.0
        for row, seeds in selected.items():
            for seed in seeds:
                if (row, str(seed)) in done:
                    print(f"{row} seed {seed}: done ({done[(row, str(seed))]:.0f} s)")
                    continue
                if row in elsewhere:
                    print(f"{row} seed {seed}: to run, by its own script: {elsewhere[row]}")
                    continue
                expected = expected_seconds(row, done, reference)
                total += expected or 0
                print(f"{row} seed {seed}: to run, expected " + (f"{expected:.0f} s" if expected else "time unknown"))
        print(f"to run: {sum(1 for r, ss in selected.items() for x in ss if (r, str(x)) not in done)} runs, "
              f"about {total / 60:.0f} minutes on one thread where the time is known")
        return
    if not args.report_only:
        results.mkdir(parents=True, exist_ok=True)
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        jobs = [(r, x) for r, seeds in selected.items() for x in seeds if (r, str(x)) not in done]
        for row in sorted({r for r, _ in jobs} & set(elsewhere)):
            print(f"{row}: made by its own script, not here: {elsewhere[row]}")
        jobs = [(r, x) for r, x in jobs if r not in elsewhere]
        run_jobs(jobs, dataset, config_files, args.workdir, csv_path, metrics)
    if not csv_path.exists():
        raise SystemExit(f"no results for {name} yet ({csv_path} does not exist)")
    title = spec.get("title", name) if spec else name
    intro = spec.get("protocol") if spec else None
    rebuild = f"python benchmarks/compare.py --table {name}" if spec else None
    write_report(title, csv_path, metrics, rank_by, paper, notes, intro=intro, rebuild=rebuild)
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
