"""Hyperparameter tuning through RecBole's ``HyperTuning`` and ``.hyper`` files, for any model.

    python run_hyper.py --model=DiffRec --params_file=properties/DiffRec.hyper --algo=bayes --max_evals=20
    recbole-diffrec tune --model=DiffRec --params_file=... --output_file=hyper_DiffRec.json

What differs from RecBole 1.2.1's tuner:
- ``exhaustive`` works on current hyperopt: RecBole's search hands hyperopt a ``numpy.random.RandomState``
  where hyperopt >= 0.2.7 calls ``Generator.integers``; ours gives it a ``Generator``.
- A trial with invalid settings (say noise_min >= noise_max) or that crashes is recorded as failed, with
  its message, and the search goes on.
- Every trial (settings, validation and test results, or the error) and the best settings are written
  to a JSON file after each trial, so a crash never loses the trials before it.
- Before the first trial the command builds the settings of the search space's points (every point of a
  finite space of up to 256, else 64 random draws; settings only, no data): if all of them are invalid,
  say through a misspelt or out-of-range fixed setting, it ends with that error and exit status 2 and
  writes nothing. It also refuses to overwrite an existing record unless ``--overwrite`` is given.
- ``exhaustive`` works with list-valued choices (``dims_dnn choice [[300],[1000]]``), which RecBole's
  space-size count cannot read.
"""

import argparse
import itertools
import json
import traceback
from functools import partial
from pathlib import Path

import numpy as np
from recbole.trainer.hyper_tuning import HyperTuning, _recursiveFindNodes

from recbole_diffrec.settings import SettingError


def exhaustive_search(new_ids, domain, trials, seed, max_failures=1000):
    """hyperopt ``algo`` drawing each point of a finite (choice-only) space once, in random order."""
    from hyperopt import pyll
    from hyperopt.base import miscs_update_idxs_vals

    def key(vals):
        return frozenset((k, v[0] if len(v) else None) for k, v in vals.items())

    seen = {key(t["misc"]["vals"]) for t in trials.trials}
    rng = np.random.default_rng(seed)
    docs = []
    for new_id in new_ids:
        for _ in range(max_failures + 1):
            idxs, vals = pyll.rec_eval(domain.s_idxs_vals, memo={domain.s_new_ids: [new_id], domain.s_rng: rng})
            if key(vals) not in seen:
                break
        else:
            return docs  # the space is exhausted
        seen.add(key(vals))
        misc = dict(tid=new_id, cmd=domain.cmd, workdir=domain.workdir)
        miscs_update_idxs_vals([misc], idxs, vals)
        docs.extend(trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc]))
    return docs


def plain(params):
    """A point of the space with numpy scalars as Python values (for Config, JSON and messages)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}


def choice_sizes(space):
    """{name: number of options} of the space's ``choice`` parameters (any option type, lists included)."""
    sizes = {}
    for node in _recursiveFindNodes(list(space.values()), "switch"):
        sizes[node.pos_args[0].pos_args[0].obj] = len(node.pos_args) - 1
    return sizes


def space_size(space):
    """The number of points of a choice-only space; None when a parameter is continuous."""
    sizes = choice_sizes(space)
    if set(sizes) != set(space):
        return None
    return int(np.prod(list(sizes.values()), dtype=np.int64))


def sample_points(space, limit=256, draws=64, seed=2020):
    """Points of the space to check before a search: all of a finite space of at most `limit` points,
    else `draws` random ones."""
    from hyperopt import space_eval
    from hyperopt.pyll.stochastic import sample

    size = space_size(space)
    if size is not None and size <= limit:
        sizes = choice_sizes(space)
        names = sorted(sizes)
        grid = itertools.product(*(range(sizes[n]) for n in names))
        return [space_eval(space, dict(zip(names, idx))) for idx in grid]
    rng = np.random.default_rng(seed)
    return [sample(space, rng=rng) for _ in range(draws)]


def invalid_points(model, dataset, config_file_list, fixed, points):
    """[(point, SettingError)] for the points whose settings are invalid (the settings are built and
    checked as a trial would, without loading any data)."""
    from recbole_diffrec.config import Config

    invalid = []
    for point in points:
        point = plain(point)
        try:
            Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict={**fixed, **point})
        except SettingError as err:
            invalid.append((point, err))
    return invalid


def objective_function(model, dataset, config_dict=None, config_file_list=None, keep_checkpoints=False):
    """Train and test one setting; the dict HyperTuning expects.

    The test result is that of the epoch chosen on validation (its checkpoint is reloaded before the
    test), as in a normal run; the trial's checkpoint files are removed afterwards unless
    `keep_checkpoints`.
    """
    import os

    from recbole_diffrec.quick_start import prepare

    config, (train, valid, test), _, trainer = prepare(model, dataset, config_file_list, config_dict)
    best_valid_score, best_valid_result = trainer.fit(train, valid, verbose=False, saved=True, show_progress=False)
    test_result = trainer.evaluate(test, load_best_model=True)
    if not keep_checkpoints and os.path.isfile(trainer.saved_model_file):  # fit removed the resume snapshot
        os.remove(trainer.saved_model_file)
    return {
        "model": config["model"],
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in test_result.items()},
    }


class Tuner(HyperTuning):
    """RecBole's HyperTuning with a working exhaustive search, failed trials kept, and a JSON record."""

    def __init__(self, objective, output_file, algo="exhaustive", max_evals=100, early_stop=10, seed=2020,
                 **kwargs):
        exhaustive = algo == "exhaustive"
        super().__init__(objective, algo="random" if exhaustive else algo, max_evals=max_evals,
                         early_stop=early_stop, **kwargs)
        if exhaustive:
            self.algo = partial(exhaustive_search, max_failures=1000)
            size = space_size(self.space)  # None with a continuous parameter: max_evals distinct draws
            self.max_evals = max_evals if size is None else min(max_evals, size)
        self.output_file = Path(output_file)
        self.records = []
        self.seed = seed

    def run(self):
        """The search, seeded (the same trials for the same seed); ends normally if every trial failed."""
        from hyperopt import fmin
        from hyperopt.exceptions import AllTrialsFailed

        try:
            fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
                 rstate=np.random.default_rng(self.seed), show_progressbar=False)
        except AllTrialsFailed:
            pass  # every trial is in the record with its error
        self.write()

    def trial(self, params):
        import hyperopt

        params = plain(params)
        record = {"trial": len(self.records) + 1, "params": params}
        try:
            result = self.objective_function(dict(params), self.fixed_config_file_list)
        except SettingError as err:
            record.update(status="failed", error=str(err))
        except Exception as err:  # a crashed trial must not end the search; its traceback is kept
            record.update(status="failed", error=f"{type(err).__name__}: {err}",
                          traceback=traceback.format_exc(limit=5))
        else:
            record.update(status="ok", best_valid_score=result["best_valid_score"],
                          valid_result=result["best_valid_result"], test_result=result["test_result"])
            bigger = result["valid_score_bigger"]
            score = result["best_valid_score"]
            if self.best_score is None or (score > self.best_score if bigger else score < self.best_score):
                self.best_score, self.best_params, self.best_test_result = score, params, result["test_result"]
        self.records.append(record)
        self.write()
        if record["status"] != "ok":
            return {"status": hyperopt.STATUS_FAIL, "loss": None}
        return {"status": hyperopt.STATUS_OK, "loss": -score if bigger else score}

    def write(self):
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.output_file.with_suffix(self.output_file.suffix + ".tmp")
        tmp.write_text(json.dumps({"best_params": self.best_params, "best_valid_score": self.best_score,
                                   "best_test_result": self.best_test_result, "trials": self.records}, indent=1))
        tmp.replace(self.output_file)


def main(argv=None, prog="run_hyper.py"):
    from recbole_diffrec.quick_start import DEFAULT_DATASET, _convert, parse_overrides

    parser = argparse.ArgumentParser(prog=prog, description="Tune a model's settings with RecBole's HyperTuning.",
                                     epilog="Other --key=value settings are fixed for every trial.")
    parser.add_argument("--model", "-m", default="DiffRec")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET)
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--params_file", required=True, help="a .hyper search space (see properties/*.hyper)")
    parser.add_argument("--algo", choices=["exhaustive", "random", "bayes"], default="exhaustive")
    parser.add_argument("--max_evals", type=int, default=100)
    parser.add_argument("--early_stop", type=int, default=10, help="stop after this many trials without progress")
    parser.add_argument("--output_file", default=None, help="JSON record (default: hyper_<model>.json)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the search itself")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_file")
    args, rest = parser.parse_known_args(argv)
    fixed = _convert(parse_overrides(rest))
    config_files = args.config_files.split() if args.config_files else None
    output_file = Path(args.output_file or f"hyper_{args.model}.json")
    if output_file.exists() and not args.overwrite:
        parser.error(f"--output_file={output_file} exists (the record of an earlier search); "
                     "name another file, or pass --overwrite to replace it")
    if not Path(args.params_file).is_file():
        parser.error(f"--params_file={args.params_file}: no such file")

    def objective(params, config_file_list):
        return objective_function(args.model, args.dataset, {**fixed, **params}, config_file_list)

    try:
        tuner = Tuner(objective, output_file, algo=args.algo, max_evals=args.max_evals,
                      early_stop=args.early_stop, seed=args.seed, params_file=args.params_file,
                      fixed_config_file_list=config_files)
    except (ValueError, SyntaxError, NameError) as err:  # RecBole's reading of the .hyper file
        parser.error(f"--params_file={args.params_file}: {err}")
    points = sample_points(tuner.space, seed=args.seed)
    invalid = invalid_points(args.model, args.dataset, config_files, fixed, points)
    if invalid:
        point, err = invalid[0]
        at = ", ".join(f"{k}={v!r}" for k, v in point.items())
        example = f"{err} (at {at})" if err.key in point else str(err)  # a fixed setting's error needs no point
        if len(invalid) == len(points):
            parser.exit(2, f"{parser.prog}: error: every setting of the search space is invalid "
                        f"({len(points)} checked), e.g. {example}\n")
        print(f"{len(invalid)} of {len(points)} checked settings of the search space are invalid and will be "
              f"recorded as failed trials, e.g. {example}")
    tuner.run()
    ok = sum(r["status"] == "ok" for r in tuner.records)
    print(f"{len(tuner.records)} trials ({ok} ok); best {tuner.best_params} valid {tuner.best_score}")
    print(f"record: {tuner.output_file}")
    return tuner


if __name__ == "__main__":
    main()
