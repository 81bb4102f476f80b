"""Preparing a run: Config, dataset, loaders, model and trainer, every check before training, and nothing left
behind by a user's error. The floor under the Python API (:mod:`recbole_diffrec.pipeline`) and the saved run
(:mod:`recbole_diffrec.saved_run`)."""

import contextlib
import logging
from logging import getLogger

from recbole.utils import ModelType, init_logger, init_seed

from recbole_diffrec import ownership
from recbole_diffrec.config import Config
from recbole_diffrec.data.loaders import data_preparation
from recbole_diffrec.data.reading import create_dataset
from recbole_diffrec.data.records import (
    data_differences,
    data_record,
    empty_split_error,
    split_differences,
    split_record,
)
from recbole_diffrec.errors import CheckpointError, OutputError, UserError
from recbole_diffrec.registry import get_trainer, is_ours
from recbole_diffrec.run_context import RunContext
from recbole_diffrec.settings import SettingError

DEFAULT_DATASET = "ml-100k"  # bundled in the recbole wheel: runs with no network


def prepare(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, unchecked=(),
            resume_file=None, trained_on=None, check_data=None):
    """Config, dataset, loaders, model and trainer, ready to fit. Every check runs before training, and a
    user's error (:class:`~recbole_diffrec.errors.UserError`) leaves nothing behind: settings before the data
    loads, then the data, then, with `resume_file`, the checkpoint to continue (its model, settings and
    data), or with `trained_on` (a checkpoint's record of its data) that the data is still the same;
    `check_data(train, valid, test)` adds a check of the loaders before the model is built.
    `unchecked`: see :class:`~recbole_diffrec.config.Config`."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    unchecked=unchecked)
    with discarded_on_error(config):
        init_seed(config["seed"], config["reproducibility"])
        start_logging(config)
        logger = getLogger()
        model_class = config.model_class
        ours = is_ours(model_class)
        dataset_obj = create_dataset(config, model_class.validate_dataset if ours else None)
        logger.info(dataset_obj)
        check_cutoffs(config, dataset_obj)
        record = data_record(dataset_obj)
        if trained_on is not None:
            changed = data_differences(trained_on, record)
            if changed:
                raise CheckpointError(f"refusing to use the checkpoint: {changed}; evaluate it on the data it was "
                                      "trained on, or train a new model")
        run = RunContext.of(config)
        # recbole-diffrec's per-user loaders serve its general models; its sequential ones take RecBole's
        train_data, valid_data, test_data = data_preparation(config, dataset_obj,
                                                             ours and model_class.type == ModelType.GENERAL, run)
        loaders = (train_data, valid_data, test_data)
        empty = empty_split_error(loaders, run)
        if empty is not None:
            raise empty
        record["splits"] = split_record(config, loaders)
        if trained_on is not None:
            moved = split_differences(trained_on.get("splits"), record["splits"])
            if moved:
                raise CheckpointError(f"refusing to use the checkpoint: {moved}; a saved model is evaluated, "
                                      "served and resumed on its own split")
        if check_data is not None:
            check_data(train_data, valid_data, test_data)
        init_seed(config["seed"] + run.rank, config["reproducibility"])
        model_obj = model_class(config, train_data._dataset).to(config["device"])
        logger.info(model_obj)
        trainer = get_trainer(config, model_class)(config, model_obj, run)
        trainer.data_record = record
        if resume_file:
            trainer.resume_checkpoint(resume_file)
    return config, (train_data, valid_data, test_data), model_obj, trainer


def check_cutoffs(config, dataset):
    """Every top-k cut-off ranks at most the dataset's items (RecBole's padding item aside)."""
    topk = config["topk"]
    cutoffs = [topk] if isinstance(topk, int) else list(topk or [])
    items = dataset.item_num - 1
    if cutoffs and max(cutoffs) > items:
        raise SettingError("topk", topk, f"every cut-off must be at most {items}, the items of dataset "
                           f"{dataset.dataset_name!r}")


_RUN_HANDLERS: list[logging.Handler] = []  # the log handlers RecBole's init_logger added for the latest run of this process


def start_logging(config):
    """RecBole's logging for this run: its own log file and console output. RecBole's ``init_logger`` calls
    ``logging.basicConfig``, which does nothing once the root logger has a handler, so a second run in one
    process (a tuning trial, a notebook) would log into no file at all. The previous run's handlers are
    closed and removed first; handlers installed by others stay."""
    root = logging.getLogger()
    for handler in _RUN_HANDLERS:
        root.removeHandler(handler)
        handler.close()
    others = list(root.handlers)
    for handler in others:
        root.removeHandler(handler)
    try:
        init_logger(config)
    finally:
        _RUN_HANDLERS[:] = list(root.handlers)
        for handler in _RUN_HANDLERS:
            if isinstance(handler, logging.FileHandler):
                ownership.note_file(handler.baseFilename)
        for handler in others:
            root.addHandler(handler)


@contextlib.contextmanager
def discarded_on_error(config):
    """On a user's error inside, remove what this run made, and only that (:mod:`recbole_diffrec.ownership`):
    its log file, tensorboard events, caches and checkpoints, and the folders it made that are empty once they
    are gone. Another run's files, and folders that existed before, are never touched. In a distributed run
    rank 0 alone cleans up (the ranks share the folders)."""
    cleans = RunContext.of(config).writes_files
    with ownership.tracking() as created:
        try:
            yield
        except UserError:
            discard_run(created, cleans)
            raise
        except OSError as err:  # a folder or file the run writes (a read-only or virtual file system)
            discard_run(created, cleans)
            where = err.filename or ""
            raise OutputError(f"{where}: {err.strerror or err}; check the paths the run reads and writes "
                              "(data_path, checkpoint_dir, the working folder) and their permissions") from None


def discard_run(created, cleans=True):
    """Close this run's log files and, where this process cleans up (`cleans`), remove what `created` lists."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            root.removeHandler(handler)
    if cleans:
        ownership.discard(created)
