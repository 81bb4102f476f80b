"""Hyperparameter tuning through RecBole's ``HyperTuning`` and ``.hyper`` files, for any model.

    python run_hyper.py --model=DiffRec --algo=bayes --max_evals=20
    recbole-diffrec tune --model=TDiffRec --output_file=hyper_TDiffRec.json
    recbole-diffrec tune --model=BPR --params_file=my_space.hyper

A model of recbole-diffrec searches its own space by default: the ``.hyper`` files of its lineage, composed
as its yaml files are (``TDiffRec`` = ``DiffRec.hyper`` + ``TimeWeighting.hyper``); ``--params_file``
names another.

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

import itertools
import json
import os
import traceback
from functools import partial
from pathlib import Path

import numpy as np
from recbole.trainer.hyper_tuning import HyperTuning, _recursiveFindNodes

from recbole_diffrec import ownership
from recbole_diffrec.config import Config
from recbole_diffrec.preparation import discard_run, prepare
from recbole_diffrec.settings import SettingError, hyper_files


def model_space(model_class):
    """The model's search space: its lineage's ``.hyper`` files, a later file's parameter replacing an earlier
    one's (None for a model without one, such as RecBole's)."""
    files = hyper_files(model_class)
    if not files:
        return None
    space = {}
    for path in files:
        space.update(HyperTuning._build_space_from_file(str(path)))
    return space


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
    with ownership.tracking() as made:
        config, (train, valid, test), _, trainer = prepare(model, dataset, config_file_list, config_dict)
        try:
            best_valid_score, best_valid_result = trainer.fit(train, valid, verbose=False, saved=True,
                                                              show_progress=False)
            test_result = trainer.evaluate(test, load_best_model=True)
        except KeyboardInterrupt:  # an interrupted search leaves no half trial behind (its log, its checkpoints)
            discard_run(made, trainer.run.writes_files)
            raise
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
