"""The side-by-side benchmark script end to end on ml-100k (a tiny run): progress, CSV, table."""

import csv
import subprocess
import sys

from conftest import REPO


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


def test_a_variant_settings_file_starts_from_its_base_row():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import compare
    import yaml

    configs = REPO / "benchmarks" / "configs" / "ml-1m_clean"
    paper = yaml.safe_load((configs / "DiffRec.yaml").read_text())
    variant = compare.model_settings("ml-1m_clean", "DiffRec@lr5e-4")
    assert "base" not in variant
    assert variant == {**paper, "learning_rate": 0.0005}
