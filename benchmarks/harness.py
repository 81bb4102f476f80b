"""The benchmark harness every script under benchmarks/ builds on.

- :func:`run_child` runs a script's ``--child`` mode in a subprocess (its own peak memory, its own crash) and
  reads back the one ``RESULT <json>`` line it prints (:func:`emit`), echoing its ``PROGRESS`` lines.
- :func:`train_to_early_stop` trains one model with given settings to early stop, selects on validation and
  reports test: the unit of the side-by-side tables (compare.py) and the studies (sensitivity.py).
- :func:`peak_host_mb` and :func:`cpu` (the machine, with the matrix flags that decide CPU speed).
- :func:`variant_settings`: the one meaning of ``Model@variant``: the model ``Model`` with the settings of
  ``benchmarks/configs/<dataset>/Model@variant.yaml`` (``base: <row>`` in it starts from that row's file).
"""

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = "RESULT "
PROGRESS = "PROGRESS "


def cpu():
    """lscpu's model name and which of avx2 / avx512f / avx512_bf16 / amx_bf16 the CPU has."""
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        info = []
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("Model name")),
                 platform.processor() or platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("Flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; flags: {' '.join(wanted) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}"


def native_bfloat16():
    return "bf16" in cpu().split("flags:")[1]


def peak_host_mb():
    """This process's peak resident memory, in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result):
    """A child's answer to its parent: one line on stdout."""
    print(RESULT + json.dumps(result), flush=True)


def run_child(argv, label="", cwd=REPO, timeout=None, echo=True):
    """Run ``python <argv...>`` in a subprocess; returns (exit code, the parsed RESULT dict or None, the
    last lines of its stderr). PROGRESS lines on its stderr are echoed, prefixed by `label`."""
    proc = subprocess.Popen([sys.executable, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(cwd))
    tail = []

    def drain():
        for line in proc.stderr:
            if line.startswith(PROGRESS):
                if echo:
                        print(f"    {label}: {line[len(PROGRESS):].rstrip()}", flush=True)
            else:
                tail[:] = [*tail[-19:], line.rstrip()]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    out = proc.stdout.read()  # stderr is drained by the thread, so neither pipe can fill and block the child
    proc.wait()
    reader.join()
    if timer:
        timer.cancel()
    lines = [x for x in out.splitlines() if x.startswith(RESULT)]
    result = json.loads(lines[-1][len(RESULT):]) if lines else None
    return proc.returncode, result, tail


def report_progress():
    """After RecBole's logger is set up quietly: its per-epoch lines go to stderr as 'PROGRESS ...' (the
    parent echoes them) and to the run's log file; the console stays quiet otherwise."""
    import logging
    import re

    pattern = re.compile(r"epoch \d+ (training|evaluating)")

    class Progress(logging.Handler):
        def emit(self, record):
            message = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
            if pattern.search(message):
                print(PROGRESS + message, file=sys.stderr, flush=True)

    root = logging.getLogger()
    for handler in root.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    root.setLevel(logging.INFO)
    root.addHandler(Progress(level=logging.INFO))


def variant_settings(dataset, row):
    """The settings of a table row ``Model`` or ``Model@variant``: benchmarks/configs/<dataset>/<row>.yaml
    when it exists (``base: <row>`` in it starts from that row's settings, ``base: <dataset>/<row>`` from
    another table's row), else none."""
    import yaml

    if "/" in row:
        dataset, row = row.rsplit("/", 1)

    path = REPO / "benchmarks" / "configs" / dataset / f"{row}.yaml"
    settings = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    base = settings.pop("base", None)
    return {**variant_settings(dataset, base), **settings} if base else settings


def model_of(row):
    """The model a row ``Model@variant`` runs."""
    return row.split("@")[0]


def train_to_early_stop(model, seed, dataset, config_files, overrides, adjust=None):
    """Train `model` (a registry name) with `overrides` to early stop, select on validation, test; the
    row every table and study stores. `adjust(net, train_data)`, if given, changes the built model before
    training (a fidelity check's controlled difference)."""
    sys.path.insert(0, str(REPO))
    from recbole_diffrec.pipeline import prepare

    settings = {"seed": seed, "show_progress": False, "state": "WARNING", **overrides}
    start = time.perf_counter()
    config, (train, valid, test), net, trainer = prepare(model, dataset, config_files, settings)
    if adjust is not None:
        adjust(net, train)
    report_progress()
    fit_start = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - fit_start
    test_result = trainer.evaluate(test, load_best_model=True)
    epochs = max(len(trainer.train_loss_dict), 1)
    return {
        "seed": seed,
        **{f"test_{m}": float(v) for m, v in test_result.items()},
        **{f"valid_{m}": float(v) for m, v in (trainer.best_valid_result or {}).items()},
        "epochs": epochs, "epoch_budget": config["epochs"], "seconds_per_epoch": fit_seconds / epochs,
        "best_epoch": getattr(trainer, "best_epoch", None),
        "total_seconds": time.perf_counter() - start,
        "params": sum(p.numel() for p in net.parameters()),
        "peak_host_mb": peak_host_mb(),
        "settings": json.dumps(overrides, sort_keys=True),
        "config_files": " ".join(os.path.relpath(f, REPO) for f in config_files),
    }
