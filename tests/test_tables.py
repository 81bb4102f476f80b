"""The results pages' builder (benchmarks/tables.py, benchmarks/compare.py): table specs, verdicts the seeds
support, pages sorted like their charts."""

import csv
import importlib
import subprocess
import sys

import pytest
from conftest import REPO


def _benchmark(name):
    sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module(name)


def _fixture_csv(path, rows):
    """A CSV with the columns of results/ml-1m_clean.csv; `rows`: (row, seed, test recall@20)."""
    header = next(csv.reader(open(REPO / "results" / "ml-1m_clean.csv")))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for model, seed, recall in rows:
            writer.writerow({**dict.fromkeys(header, "1"), "model": model, "seed": seed, "test_recall@20": recall,
                             "settings": "{}", "config_files": "dataset_configs/ml-1m_clean.yaml"})


def test_report_only_gives_one_verdict_word_per_row_and_sorts_best_first(tmp_path):
    """ahead: three seeds clearly above a deterministic baseline; level: a higher mean with a spread wider than
    the gap; one seed; behind: a steady row below. The page's first R@20 table is sorted best first."""
    rows = [("EASE", s, 0.1816) for s in ("2020", "2021", "2022")]
    rows += [("TDiffRec", "2020", 0.2050), ("TDiffRec", "2021", 0.2060), ("TDiffRec", "2022", 0.2040)]  # ahead
    rows += [("TGiffCF", "2020", 0.2222), ("TGiffCF", "2021", 0.2256), ("TGiffCF", "2022", 0.1165)]  # level
    rows += [("FlowCF", "2020", 0.1900)]  # one seed
    rows += [("LDiffRec", "2020", 0.1716), ("LDiffRec", "2021", 0.1702), ("LDiffRec", "2022", 0.1688)]  # behind
    rows += [("Pop", s, v) for s, v in (("2020", 0.0999), ("2021", 0.0981), ("2022", 0.0982))]
    results = tmp_path / "results"
    results.mkdir()
    _fixture_csv(results / "fixture.csv", rows)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--report_only", "--results_dir",
                           str(results), "--table", "fixture"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (results / "fixture.md").read_text().splitlines()
    full = page.index("## All rows")
    table = [line.split(" | ") for line in page[full:] if line.startswith("| ") and "---" not in line]
    header, body = table[0], table[1:]
    column = header.index("verdict")
    words = {cells[0][2:]: cells[column] for cells in body}
    assert words == {"TDiffRec": "ahead", "TGiffCF": "level", "FlowCF": "one seed", "LDiffRec": "behind",
                     "EASE": "best baseline", "Pop": "baseline"}
    first = next(i for i, line in enumerate(page) if line.startswith("| ") and "R@20" in line.split(" | "))
    at = page[first].split(" | ").index("R@20")
    recalls = []
    for line in page[first + 2:]:
        if not line.startswith("| "):
            break
        recalls.append(float(line.split(" | ")[at].split(" ")[0]))
    assert len(recalls) >= 3 and recalls == sorted(recalls, reverse=True)
    assert sum("**Verdicts.**" in line for line in page) == 1  # the rule, stated once


def test_welch_matches_scipy_and_handles_rows_without_spread():
    from scipy import stats

    tables = _benchmark("tables")
    a, b = [0.2222, 0.2256, 0.1165], [0.1801, 0.1830, 0.1790]
    diff, low, high, p = tables.welch(a, b)
    assert p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert diff == pytest.approx(sum(a) / 3 - sum(b) / 3) and low < diff < high
    assert tables.verdict([0.19, 0.19, 0.19], [0.18])[0] == "ahead"  # no spread on either side: the sign decides
    assert tables.verdict([0.18, 0.18], [0.18, 0.18])[0] == "level"
    assert tables.verdict([0.17, 0.171, 0.172], [0.18, 0.18, 0.18])[0] == "behind"  # a baseline without spread
    assert tables.verdict([0.3], [0.1, 0.1, 0.1])[0] == "one seed"


def test_every_row_of_each_committed_table_is_in_its_spec():
    tables = _benchmark("tables")
    specs = tables.all_specs()
    for path in sorted((REPO / "results").glob("*.csv")):
        assert path.stem in specs, f"{path} has no spec benchmarks/tables/{path.stem}.yaml"
        spec = specs[path.stem]
        for row in csv.DictReader(open(path)):
            assert row["model"] in spec["rows"], f"{path}: row {row['model']} is not in its spec"
            assert int(row["seed"]) in spec["rows"][row["model"]]["seeds"], (path, row["model"], row["seed"])
        for config in spec["config_files"]:
            assert (REPO / config).is_file(), config
        for name, row in spec["rows"].items():  # a variant's settings file exists
            if "@" in name and not row["command"]:
                assert (REPO / "benchmarks" / "configs" / spec["dataset"] / f"{name}.yaml").is_file(), name


def test_the_dry_run_lists_every_row_of_the_table():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--table", "ml-1m_clean",
                           "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if " seed " in line]
    listed = {tuple(line.split(": ")[0].rsplit(" seed ", 1)): line for line in lines}
    recorded = {(r["model"], r["seed"]) for r in csv.DictReader(open(REPO / "results" / "ml-1m_clean.csv"))}
    assert recorded <= set(listed)
    assert all(": done (" in listed[run] for run in recorded)


def test_rows_and_seeds_select_a_subset_and_unknown_rows_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--table", "ml-1m_clean",
                           "--rows", "EASE", "Pop", "--seeds", "7", "--results_dir", str(tmp_path), "--dry-run"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split(":")[0] for line in proc.stdout.splitlines() if " seed " in line] == ["EASE seed 7",
                                                                                              "Pop seed 7"]
    assert "expected 35 s" in proc.stdout  # EASE's recorded time in results/ml-1m_clean.csv
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--table", "ml-1m_clean",
                           "--rows", "EAES", "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "'EAES' is not a row" in proc.stderr
