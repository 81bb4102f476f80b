"""The settings every run reads, checked before any data loads: the trainer's own (``trainer.yaml``) and
RecBole's training and evaluation settings that RecBole accepts although they cannot work."""

from recbole.evaluator.register import metrics_dict

from recbole_diffrec.settings import SettingError
from recbole_diffrec.training.precision import PRECISIONS

def read_trainer_settings(reader):
    """Read and validate the trainer's settings (``trainer.yaml``), for any model."""
    return {
        "resume_every": reader.integer("resume_every", low=1),
        "train_precision": reader.choice("train_precision", PRECISIONS),
        "ema_decay": reader.number("ema_decay", low=0, high=1, high_open=True),
    }


DIST_BACKENDS = ("gloo", "nccl", "mpi", "ucc")  # torch.distributed's process-group backends


def read_run_settings(reader):
    """Check RecBole's own training and evaluation settings that RecBole accepts although they cannot work
    (a learning rate of 0 trains nothing; a validation metric at a k not computed fails after training)."""
    s = {
        "learning_rate": reader.number("learning_rate", low=0, low_open=True),
        "weight_decay": reader.number("weight_decay", low=0),
        "seed": reader.integer("seed", low=0, high=2 ** 32 - 1),
        "epochs": reader.integer("epochs", low=1),
        "train_batch_size": reader.integer("train_batch_size", low=1),
        "eval_batch_size": reader.integer("eval_batch_size", low=1),
        "eval_step": reader.integer("eval_step", low=0),
        "stopping_step": reader.integer("stopping_step", low=0),
    }
    split = (reader.optional("eval_args") or {}).get("split")
    if isinstance(split, dict) and "RS" in split and (not isinstance(split["RS"], (list, tuple))
                                                      or len(split["RS"]) != 3):
        raise SettingError("eval_args", reader.optional("eval_args"), "split RS takes three ratios, "
                           "[train, valid, test], e.g. {'split': {'RS': [0.8, 0.1, 0.1]}}")
    topk = reader.raw("topk")
    topk = [topk] if isinstance(topk, int) and not isinstance(topk, bool) else topk
    if not isinstance(topk, list) or not topk or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                                         for k in topk):
        raise SettingError("topk", reader.raw("topk"), "must be a positive integer or a list of them, e.g. [10, 20]")
    metrics = reader.raw("metrics")
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SettingError("metrics", metrics, "must be a list of metric names, e.g. [Recall, NDCG]")
    unknown = [m for m in metrics if m.lower() not in metrics_dict]
    if unknown:
        raise SettingError("metrics", metrics, f"{unknown[0]!r} is not a metric; RecBole's: "
                           f"{', '.join(sorted(metrics_dict))} (any case)")
    valid_metric = reader.raw("valid_metric")
    name, _, k = str(valid_metric).partition("@")
    if name.lower() not in {m.lower() for m in metrics}:
        raise SettingError("valid_metric", valid_metric, f"must be one of the metrics computed ({metrics}), "
                           "at one of topk, e.g. NDCG@10")
    if k and (not k.isdigit() or int(k) not in topk):
        raise SettingError("valid_metric", valid_metric, f"its cut-off must be one of topk={topk}")
    return s
