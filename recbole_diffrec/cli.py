"""The command line: ``recbole-diffrec [run|tune|evaluate|recommend] ...`` and ``run_recbole.py``.

    recbole-diffrec run --model=DiffRec --epochs=20
    recbole-diffrec evaluate saved/DiffRec-....pth --inference_steps=4 --topk=[10,20,50]
    recbole-diffrec recommend saved/DiffRec-....pth --users 196 186 --k 10
    recbole-diffrec tune --model=DiffRec --max_evals=20
    recbole-diffrec convert ../shared/datasets/ml-1m_clean --out dataset --name ml-1m_clean

Every error a user can cause (a setting, the data, a checkpoint: :mod:`recbole_diffrec.errors`) ends a
command with one line, ``<program>: error: <what, which value, what is allowed>``, and exit status 2, as
argparse does for a bad option; it is the user's input, not a fault, so no traceback (``--debug`` shows it).
"""

import argparse
import ast
import json
import sys
from pathlib import Path

from recbole_diffrec import compat, ownership
from recbole_diffrec.config import torchrun_environment
from recbole_diffrec.data.convert import main as convert_main
from recbole_diffrec.errors import UserError
from recbole_diffrec.launcher import run_distributed
from recbole_diffrec.pipeline import DEFAULT_DATASET, evaluate, recommend, run
from recbole_diffrec.registry import get_model, model_classes
from recbole_diffrec.tuning import (
    Tuner,
    invalid_points,
    model_space,
    objective_function,
    sample_points,
)


def parse_overrides(args, parser=None):
    """``--key=value`` pairs (RecBole's command-line syntax) as a dict of strings; anything else is an
    argparse error of `parser` (exit status 2)."""
    overrides, unknown = {}, []
    for arg in args:
        if arg.startswith("--") and "=" in arg and len(arg.split("=", 1)[0]) > 2:
            key, value = arg[2:].split("=", 1)
            overrides[key] = value
        else:
            unknown.append(arg)
    if unknown:
        message = f"unrecognised arguments: {' '.join(unknown)} (settings are given as --key=value)"
        if parser is None:
            raise SystemExit(message)
        parser.error(message)
    return overrides


def add_debug(parser):
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")


def guarded(parser, debug, action):
    """`action()`, with a user's error (:class:`UserError`) ending the command in one line and status 2."""
    try:
        return action()
    except UserError as err:
        if debug:
            raise
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")
    except KeyboardInterrupt:
        if debug:
            raise
        parser.exit(130, f"{parser.prog}: interrupted; a training run keeps its resume snapshot (--resume)\n")


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
    add_debug(parser)
    return parser


def convert_values(overrides):
    """Typed values the way RecBole converts its command line ('0.1' -> 0.1, '[300]' -> [300])."""
    converted = {}
    for key, value in overrides.items():
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = {"true": True, "false": False}.get(value.lower(), value)
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):  # [Recall,NDCG]: a list of names, unquoted
                parsed = [convert_values({"_": part.strip()})["_"] for part in text[1:-1].split(",") if part.strip()]
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
    overrides = convert_values(parse_overrides(rest, parser))
    config_files = args.config_files.split() if args.config_files else None
    if args.nproc < 1:
        parser.error(f"--nproc={args.nproc}: must be >= 1 (the number of training processes)")
    if args.nproc > 1 and torchrun_environment() is not None:
        parser.error(f"--nproc={args.nproc} under torchrun: torchrun starts the processes (--nproc_per_node)")
    compat.apply()
    if args.nproc > 1:
        result = guarded(parser, args.debug, lambda: run_distributed(args.model, args.dataset, config_files, overrides,
                                                                   nproc=args.nproc, resume_file=args.resume))
    else:
        result = guarded(parser, args.debug, lambda: run(args.model, args.dataset, config_files, overrides,
                                                        resume_file=args.resume))
    if (torchrun_environment() or (0,))[0] != 0:
        return result  # under torchrun rank 0 reports
    print(f"model: {result['model']}  dataset: {result['dataset']}")
    print(f"best valid: {_fmt(result['best_valid_result'])}")
    print(f"test: {_fmt(result['test_result'])}")
    print(f"log: {result['log_file']}")
    print(f"checkpoint: {result['checkpoint']}")
    return result


def cli(argv=None):
    """Console entry point: ``recbole-diffrec [run|tune|evaluate|recommend|convert] ...`` (run is the default)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "tune":
        return tune_main(argv[1:], prog="recbole-diffrec tune")
    if argv and argv[0] == "convert":
        return convert_main(argv[1:], prog="recbole-diffrec convert")
    if argv and argv[0] in ("evaluate", "recommend"):
        return serve_main(argv[1:], argv[0], prog=f"recbole-diffrec {argv[0]}")
    if argv and argv[0] == "run":
        argv = argv[1:]
    main(argv, prog="recbole-diffrec [run]")
    return 0


def tune_main(argv=None, prog="run_hyper.py"):
    """``recbole-diffrec tune`` / ``run_hyper.py``."""
    parser = argparse.ArgumentParser(prog=prog, description="Tune a model's settings with RecBole's HyperTuning.",
                                     epilog="Other --key=value settings are fixed for every trial.")
    parser.add_argument("--model", "-m", default="DiffRec")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET)
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--params_file", default=None, help="a .hyper search space (default for recbole-diffrec's "
                        "models: their own, composed from properties/*.hyper)")
    parser.add_argument("--algo", choices=["exhaustive", "random", "bayes"], default="exhaustive")
    parser.add_argument("--max_evals", type=int, default=100)
    parser.add_argument("--early_stop", type=int, default=10, help="stop after this many trials without progress")
    parser.add_argument("--output_file", default=None, help="JSON record (default: hyper_<model>.json)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the search itself")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_file")
    add_debug(parser)
    args, rest = parser.parse_known_args(argv)
    fixed = convert_values(parse_overrides(rest, parser))
    if args.max_evals < 1:
        parser.error(f"--max_evals={args.max_evals}: must be >= 1")
    compat.apply()
    return guarded(parser, args.debug, lambda: _tune(parser, args, fixed))


def check_hyper_file(parser, path):
    """A .hyper file names at least one parameter, and each ``choice`` at least one value (hyperopt would
    fail on either deep in its search)."""
    found = {}
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if len(parts) < 3:
            continue
        if parts[0] in found:
            parser.error(f"--params_file={path}:{number}: {parts[0]} is given again (first at line "
                         f"{found[parts[0]]}); one line per parameter")
        found[parts[0]] = number
        if parts[1] == "choice":
            try:
                values = ast.literal_eval("".join(parts[2:]))
            except (ValueError, SyntaxError):
                parser.error(f"--params_file={path}:{number}: {parts[0]} choice takes a list, e.g. [0.001,0.01]")
            if not isinstance(values, (list, tuple)) or not values:
                parser.error(f"--params_file={path}:{number}: {parts[0]} choice has no values; give at least one, "
                             "e.g. [0.001,0.01]")
    if not found:
        parser.error(f"--params_file={path}: no parameters; a line is 'name choice [v1,v2]' (or uniform, "
                     "quniform, loguniform with low,high)")


def _tune(parser, args, fixed):
    config_files = args.config_files.split() if args.config_files else None
    output_file = Path(args.output_file or f"hyper_{args.model}.json")
    why = ownership.unwritable(str(output_file.parent)) or (
        f"{output_file} is a folder" if output_file.is_dir() else "")
    if why:
        parser.error(f"--output_file={output_file}: cannot write the record there: {why}")
    if output_file.exists() and not args.overwrite:
        parser.error(f"--output_file={output_file} exists (the record of an earlier search); "
                     "name another file, or pass --overwrite to replace it")
    space = None
    if args.params_file is None:
        space = model_space(get_model(args.model))
        if space is None:
            parser.error(f"--params_file is needed for {args.model}: recbole-diffrec ships search spaces for its "
                         f"own models only ({', '.join(model_classes())})")
    elif not Path(args.params_file).is_file():
        parser.error(f"--params_file={args.params_file}: no such file")
    else:
        check_hyper_file(parser, args.params_file)

    def objective(params, config_file_list):
        return objective_function(args.model, args.dataset, {**fixed, **params}, config_file_list)

    try:
        tuner = Tuner(objective, output_file, algo=args.algo, max_evals=args.max_evals,
                      early_stop=args.early_stop, seed=args.seed, space=space, params_file=args.params_file,
                      fixed_config_file_list=config_files)
    except UserError:
        raise
    except (ValueError, SyntaxError, NameError) as err:  # RecBole's reading of the .hyper file
        parser.error(f"--params_file={args.params_file}: {err}")
    points = sample_points(tuner.space, seed=args.seed)
    invalid = invalid_points(args.model, args.dataset, config_files, fixed, points)
    if invalid:
        point, refusal = invalid[0]
        at = ", ".join(f"{k}={v!r}" for k, v in point.items())
        example = f"{refusal} (at {at})" if refusal.key in point else str(refusal)  # a fixed setting's error needs no point
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


def serve_main(argv, command, prog):
    """``recbole-diffrec evaluate|recommend <checkpoint> ...``."""
    parser = argparse.ArgumentParser(
        prog=prog, epilog="--key=value changes how the saved model is run or evaluated, e.g. --inference_steps=4 "
        "--topk=[10,20,50]; of the model's settings only those its yaml marks 'may change on evaluate' may change.")
    parser.add_argument("checkpoint")
    if command == "recommend":
        parser.add_argument("--users", nargs="+", required=True, help="user tokens as in the dataset files")
        parser.add_argument("--k", type=int, default=10, help="items per user, at least 1 and at most the items "
                            "the user has not seen")
    add_debug(parser)
    args, rest = parser.parse_known_args(argv)
    overrides = convert_values(parse_overrides(rest, parser))
    compat.apply()

    def serve():
        if command == "evaluate":
            print(json.dumps(evaluate(args.checkpoint, overrides), indent=1))
        else:
            for user, items in recommend(args.checkpoint, args.users, args.k, overrides).items():
                print(f"{user}\t{' '.join(items)}")

    guarded(parser, args.debug, serve)
