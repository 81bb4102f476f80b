"""The side-by-side benchmark script end to end on ml-100k (a tiny run): progress, CSV, table."""

import csv
import importlib
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # end-to-end: whole runs, subprocesses


def test_compare_shows_progress_and_writes_the_table(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("epochs: 2\neval_step: 1\nmetrics: [Recall, NDCG]\ntopk: [10, 20]\n"
                      "valid_metric: recall@20\n")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "compare.py"), "--dataset", "ml-100k", "--config_files",
         str(config), "--models", "BPR", "--seeds", "7", "--results_dir", str(out), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    # per-epoch progress of the child, echoed while it runs, then its result line
    assert any(line.strip().startswith("BPR seed 7: epoch 1 training") for line in lines), proc.stdout
    assert any("BPR seed 7: epoch 1 evaluating" in line for line in lines)
    rows = list(csv.DictReader(open(out / "ml-100k.csv")))
    assert [(r["model"], r["seed"], r["epochs"]) for r in rows] == [("BPR", "7", "2")]
    recall10, recall20 = float(rows[0]["test_recall@10"]), float(rows[0]["test_recall@20"])
    assert 0 < recall20 <= 1 and recall20 >= recall10
    table = (out / "ml-100k.md").read_text()
    assert "| BPR | 1 |" in table
    assert not (REPO / "results" / "ml-100k.csv").exists()


def test_protocol_timing_records_every_phase(tmp_path):
    out = tmp_path / "protocol.md"
    committed = REPO / "benchmarks" / "results" / "protocol-cpu.md"
    before = committed.read_bytes() if committed.exists() else None
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "protocol.py"), "--dataset", "ml-100k", "--config_files", "",
         "--set", "epochs=2", "eval_step=1", "--repeats", "1", "--workdir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| DiffRec | 1 |")]
    assert len(rows) == 1
    wall, *phases = (float(cell) for cell in rows[0][2:8])
    assert all(p >= 0 for p in phases) and abs(sum(phases) - wall) < 0.05  # the phases add up to the wall time
    assert (tmp_path / "saved").is_dir()  # the runs wrote into --workdir
    assert (committed.read_bytes() if committed.exists() else None) == before  # and --out, not the repo's table


def _benchmark(name):
    """A script of benchmarks/ imported as a module."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module(name)


def test_a_variant_settings_file_starts_from_its_base_row():
    import yaml

    compare = _benchmark("compare")

    configs = REPO / "benchmarks" / "configs" / "ml-1m_clean"
    paper = yaml.safe_load((configs / "DiffRec.yaml").read_text())
    variant = compare.model_settings("ml-1m_clean", "DiffRec@lr5e-4")
    assert "base" not in variant
    assert variant == {**paper, "learning_rate": 0.0005}


def test_the_chart_orders_rows_by_recall_and_marks_the_best_baseline(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    compare = _benchmark("compare")
    metrics = {  # recall@20 decides the order; every metric has its own best baseline
        "EASE": (0.10, 0.18, 0.09, 0.11), "Pop": (0.05, 0.10, 0.06, 0.12),
        "DiffRec": (0.11, 0.17, 0.08, 0.10), "TDiffRec@x": (0.12, 0.20, 0.10, 0.13),
    }
    summary = {m: dict(zip(compare.METRICS, v)) for m, v in metrics.items()}
    spread = {m: dict.fromkeys(compare.METRICS, 0.001) for m in metrics}
    path = tmp_path / "chart.png"
    fig = compare.plot_summary("toy", summary, spread, ["DiffRec", "TDiffRec@x"], ["EASE", "Pop"], path, plt)
    try:
        assert path.stat().st_size > 0
        axes = fig.axes
        assert [t.get_text() for t in axes[0].get_yticklabels()] == ["Pop", "DiffRec", "EASE", "TDiffRec@x"]
        for ax, metric in zip(axes, compare.METRICS):
            dots = [line for line in ax.lines if line.get_marker() == "o"]
            assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in dots] == \
                [(summary[m][metric], y) for y, m in enumerate(["Pop", "DiffRec", "EASE", "TDiffRec@x"])]
            colours = [to_rgba(line.get_color()) for line in dots]
            assert colours[0] == colours[2] == to_rgba("tab:gray") and colours[1] == to_rgba("tab:blue")
            dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
            assert [line.get_xdata()[0] for line in dashed] == [max(summary["EASE"][metric], summary["Pop"][metric])]
    finally:
        plt.close(fig)


def test_early_stopping_rules_by_hand():
    es = _benchmark("early_stopping")
    scores = [0.10, 0.09, 0.10, 0.08, 0.08, 0.08, 0.08, 0.08, 0.11]
    # RecBole: the tie at index 2 replaces the best and resets the count; 5 misses (3..7) exceed 4
    assert es.recbole_rule(scores, 4) == (2, 7)
    assert es.recbole_rule(scores, 2) == (2, 5)
    # the paper's code: the tie is no improvement; the validation 20 epochs after the best never happens
    assert es.paper_rule(scores, eval_step=5) == (0, 3)
    assert es.paper_rule([0.1, 0.2, 0.1, 0.1, 0.1, 0.3], eval_step=5) == (1, 4)  # 0.3 is never seen
    assert es.recbole_rule([0.1, 0.2, 0.3], 4) == (2, None)  # not stopped within the record


def test_early_stopping_replay_matches_a_real_run(workdir, tmp_path):
    """The recorded run's test metrics at the epoch RecBole's rule picks equal those of an ordinary run
    that stops by that rule and reloads its best checkpoint (same seed, CPU)."""
    from recbole_diffrec.pipeline import run

    es = _benchmark("early_stopping")
    config = tmp_path / "tiny.yaml"
    config.write_text("eval_step: 1\nsteps: 5\ndims_dnn: [64]\ntrain_precision: float32\n"
                      "metrics: [Recall, NDCG]\ntopk: [10, 20]\nvalid_metric: recall@20\n")
    recorded = es.record_run("DiffRec", 7, "ml-100k", [str(config)], max_epochs=4)
    assert len(recorded["records"]) == recorded["epochs_trained"] == 4
    picked, epoch, last = es.replay(recorded, lambda s, e: es.recbole_rule(s, 1), strict=False)
    ordinary = run("DiffRec", "ml-100k", [str(config)],
                   {"seed": 7, "epochs": 4, "stopping_step": 1, "show_progress": False})
    assert ordinary["best_valid_result"]["recall@20"] == picked["valid"]["recall@20"]
    assert ordinary["test_result"] == picked["test"]
    with pytest.raises(ValueError, match="had not stopped by epoch 4"):
        es.replay(recorded, lambda s, e: es.recbole_rule(s, 10))  # no limit-bound pick in the report


def test_the_table_lists_each_rows_seeds_in_numeric_order(tmp_path):
    """Seeds run in parallel append to the CSV in the order they finish; the settings list sorts them."""
    compare = _benchmark("compare")
    path = tmp_path / "toy.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=compare.FIELDS)
        writer.writeheader()
        for seed in ("11", "2", "10"):
            writer.writerow({**{field: "0.1" for field in compare.FIELDS}, "model": "Pop", "seed": seed,
                             "settings": "{}", "config_files": "toy.yaml"})
    compare.write_report("toy", path)
    table = (tmp_path / "toy.md").read_text()
    assert "| Pop | 3 |" in table
    assert "; seeds 2, 10, 11" in table


def test_a_sequential_table_has_its_metrics_epochs_and_the_papers_numbers(tmp_path):
    """HR/NDCG columns named by the CSV, epochs trained / budget, published numbers beside ours (blank where the
    paper has none), and the chart ranked by the chosen metric."""
    compare = _benchmark("compare")
    metrics = ["hit@10", "ndcg@10"]
    path = tmp_path / "seq.csv"
    runs = [("SASRec", "1", 0.06, 0.03, 12, 100), ("SASRec", "2", 0.08, 0.05, 20, 100),
            ("GRU4Rec", "1", 0.04, 0.02, 9, 100), ("DiffuRec@equal-budget", "1", 0.02, 0.01, 6, 6)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=compare.fields(metrics))
        writer.writeheader()
        for model, seed, hit, ndcg, epochs, budget in runs:
            writer.writerow({**dict.fromkeys(compare.fields(metrics), "1"), "model": model, "seed": seed,
                             "test_hit@10": hit, "test_ndcg@10": ndcg, "epochs": epochs, "epoch_budget": budget,
                             "settings": "{}", "config_files": "seq.yaml"})
    paper = tmp_path / "paper.yaml"
    paper.write_text("source: a paper, Table 3\nrows:\n  SASRec: {hit@10: 0.0626}\n  DiffuRec: {hit@10: 0.0791}\n")
    notes = tmp_path / "notes.md"
    notes.write_text("A fixed sample of users.")
    assert compare.csv_metrics(path) == metrics
    compare.write_report("seq", path, paper=paper, notes=notes, rank_by="ndcg@10")
    table = (tmp_path / "seq.md").read_text().splitlines()
    full = table.index("## All rows")
    assert table[full + 2].startswith("| model | seeds | epochs | HR@10 | N@10 | paper HR@10 | verdict |")
    assert table.index("A fixed sample of users.") > full  # the notes follow the tables
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table[full:] if line.startswith("| ")
            and "---" not in line}
    # the sample standard deviation over seeds; one seed has none to show
    assert rows["SASRec"][1:6] == ["2", "12/20 / 100", "0.0700 ± 0.0141", "0.0400 ± 0.0141", "0.0626"]
    assert rows["DiffuRec@equal-budget"][2:6] == ["6 / 6", "0.0200", "0.0100", "0.0791"]
    assert rows["GRU4Rec"][5] == ""
    assert "Paper columns: a paper, Table 3" in table


@pytest.mark.slow
def test_a_sensitivity_study_shares_its_default_point_and_skips_what_it_has(tmp_path):
    """Two sweeps, one evaluation-only: the default point trains once per seed and carries the evaluation-only
    value; a second call trains nothing; the md marks the default and the png is written."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("study: tiny\ndataset: ml-100k\nconfig_files: []\nseeds: [1, 2]\n"
                    "settings: {epochs: 2, steps: 5, dims_dnn: [16], metrics: [Recall, NDCG], topk: [10, 20], "
                    "valid_metric: Recall@20}\n"
                    "sweeps:\n  - {model: DiffRec, key: reweight, values: [true, false]}\n"
                    "  - {model: DiffRec, key: inference_steps, values: [0, 1]}\n")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "benchmarks" / "sensitivity.py"), "--plan", str(plan), "--results_dir", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "tiny.csv")))
    trained = {(r["settings"], r["seed"]) for r in rows}
    assert len(trained) == 4  # (default, reweight off) x 2 seeds: inference_steps 1 rode on the default
    assert sum(r["eval_settings"] == '{"inference_steps": 1}' for r in rows) == 2
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert second.returncode == 0 and "seed" not in second.stdout.split("wrote")[0]  # nothing ran again
    md = (out / "tiny.md").read_text()
    assert "| **true** |" in md and "| **0** |" in md
    assert (out / "tiny.png").stat().st_size > 0
