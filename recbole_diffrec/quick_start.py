"""Run a model end to end (the RecBole quick start, without RecBole's ``quick_start`` module, which imports ray)."""

import argparse
import ast
import logging
import sys
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_diffrec import compat
from recbole_diffrec.config import Config, model_classes
from recbole_diffrec.data import create_dataset, data_preparation
from recbole_diffrec.settings import SettingError
from recbole_diffrec.trainer import get_trainer

DEFAULT_DATASET = "ml-100k"  # bundled in the recbole wheel: runs with no network


def prepare(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, unchecked=()):
    """Config, dataset, loaders, model and trainer, ready to fit (settings checked before data loads;
    `unchecked`: see :class:`~recbole_diffrec.config.Config`)."""
    compat.apply()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    unchecked=unchecked)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    model_class = config.model_class
    dataset_obj = create_dataset(config, model_class)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation(config, dataset_obj, model_class)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)
    trainer = get_trainer(config, model_class)(config, model_obj)
    return config, (train_data, valid_data, test_data), model_obj, trainer


def run(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, saved=True,
        resume_file=None):
    """Train with early stopping on validation, then test the best model.

    Returns a dict: model, dataset, best_valid_score, best_valid_result, test_result, checkpoint, log_file.
    """
    config, (train_data, valid_data, test_data), _, trainer = prepare(model, dataset, config_file_list, config_dict)
    logger = getLogger()
    if resume_file:
        trainer.resume_checkpoint(resume_file)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    log_file = next((h.baseFilename for h in logging.getLogger().handlers if hasattr(h, "baseFilename")), None)
    best_valid_result = {k: float(v) for k, v in (best_valid_result or {}).items()}
    test_result = {k: float(v) for k, v in test_result.items()}
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": best_valid_score,
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "checkpoint": trainer.saved_model_file if saved else None,
        "log_file": log_file,
    }


def _distributed_worker(rank, nproc, port, model, dataset, config_file_list, config_dict, queue):
    config_dict = {**(config_dict or {}), "local_rank": rank, "world_size": nproc, "nproc": nproc, "offset": 0,
                   "ip": "127.0.0.1", "port": port}
    try:
        result = run(model, dataset, config_file_list, config_dict)
    except SettingError as err:
        # Before training, on any rank: the parent raises the first one it reads as itself and stops every
        # rank (an error escaping a worker would reach the parent only as a traceback text).
        queue.put(err)
        return
    if rank == 0:
        queue.put(result)


def collect_results(context, queue, count):
    """Read `count` results from `queue` while watching the processes of `context`, then join them.

    A process that fails raises here (`join` re-raises its error) instead of leaving the caller waiting on
    a result that never comes. An exception a worker puts in the queue is raised here as itself, once every
    worker has been stopped (one still running may be waiting for the failed one in a collective).
    """
    results = []
    while len(results) < count:
        if not queue.empty():
            item = queue.get()  # before joining: a large put blocks until it is read
            if isinstance(item, BaseException):
                for process in context.processes:
                    process.terminate()
                    process.join()
                raise item
            results.append(item)
        elif context.join(timeout=1) and queue.empty():
            raise RuntimeError(f"the worker processes exited after {len(results)} of {count} results")
    while not context.join():
        pass
    return results


def run_distributed(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, nproc=2,
                    port=None):
    """Train with `nproc` processes on torch.distributed (gloo on CPU, nccl on GPUs, or `dist_backend`).

    Each rank takes a shard of every epoch's users (train_batch_size is the global batch), gradients are
    averaged over ranks, and the timestep samplers see every rank's losses, so they stay identical.
    Returns rank 0's result dict.
    """
    import socket

    import torch.multiprocessing as mp

    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_distributed_worker, nprocs=nproc, join=False, start_method="spawn",
                                 args=(nproc, port, model, dataset, config_file_list, config_dict, queue))
    return collect_results(context, queue, 1)[0]


def parse_overrides(args):
    """``--key=value`` pairs (RecBole's command-line syntax) as a dict of strings."""
    overrides, unknown = {}, []
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            overrides[key] = value
        else:
            unknown.append(arg)
    if unknown:
        raise SystemExit(f"unrecognised arguments: {' '.join(unknown)} (settings are given as --key=value)")
    return overrides


def build_parser(prog="run_recbole.py"):
    ours = ", ".join(model_classes())
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train and evaluate a recommender with RecBole. recbole-diffrec's models: "
        f"{ours}. Any RecBole model runs by its name (BPR, EASE, ...); RecBole's own diffusion models "
        "as recbole.DiffRec and recbole.LDiffRec.",
        epilog="Any other setting is given as --key=value (e.g. --epochs=50 --learning_rate=0.0005 "
        "--dims_dnn=[1000]); it overrides the model yaml and the config files, as in RecBole.",
    )
    parser.add_argument("--model", "-m", default="DiffRec", help="model name (default: DiffRec)")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET,
                        help=f"dataset name (default: {DEFAULT_DATASET}, bundled with RecBole)")
    parser.add_argument("--config_files", default=None,
                        help="space-separated yaml files, later ones win (e.g. dataset_configs/ml-1m_clean.yaml)")
    parser.add_argument("--resume", default=None, help="a checkpoint of an interrupted run to continue from")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes for distributed training (gloo on CPU, nccl on GPUs; --dist_backend=...)")
    return parser


def _convert(overrides):
    """Typed values the way RecBole converts its command line ('0.1' -> 0.1, '[300]' -> [300])."""
    converted = {}
    for key, value in overrides.items():
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = {"true": True, "false": False}.get(value.lower(), value)
        converted[key] = parsed
    return converted


def _fmt(metrics):
    return "  ".join(f"{k}: {float(v):.4f}" for k, v in metrics.items())


def main(argv=None, prog="run_recbole.py"):
    """The command line. An invalid setting ends it with its one-line message and exit status 2, as argparse
    does for a bad option; it is the user's input, not a fault, so no traceback."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(prog)
    args, rest = parser.parse_known_args(argv)
    overrides = _convert(parse_overrides(rest))
    config_files = args.config_files.split() if args.config_files else None
    try:
        if args.nproc > 1:
            if args.resume:
                raise SystemExit("--resume with --nproc > 1 is not supported; resume in one process")
            result = run_distributed(args.model, args.dataset, config_files, overrides, nproc=args.nproc)
        else:
            result = run(args.model, args.dataset, config_files, overrides, resume_file=args.resume)
    except SettingError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"model: {result['model']}  dataset: {result['dataset']}")
    print(f"best valid: {_fmt(result['best_valid_result'])}")
    print(f"test: {_fmt(result['test_result'])}")
    print(f"log: {result['log_file']}")
    print(f"checkpoint: {result['checkpoint']}")
    return result


def cli(argv=None):
    """Console entry point: ``recbole-diffrec [run|tune|evaluate|recommend] ...`` (run is the default)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "tune":
        from recbole_diffrec.tuning import main as tune_main

        return tune_main(argv[1:], prog="recbole-diffrec tune")
    if argv and argv[0] in ("evaluate", "recommend"):
        from recbole_diffrec.serving import main as serving_main

        return serving_main(argv[1:], argv[0], prog=f"recbole-diffrec {argv[0]}")
    if argv and argv[0] == "run":
        argv = argv[1:]
    main(argv, prog="recbole-diffrec [run]")
    return 0


if __name__ == "__main__":
    cli()
