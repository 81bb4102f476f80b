"""Reuse a saved checkpoint: evaluate it, or recommend top-K items for users (by their original tokens).

    recbole-diffrec evaluate saved/DiffRec-....pth
    recbole-diffrec evaluate saved/DiffRec-....pth --inference_steps=4 --topk=[10,20,50]
    recbole-diffrec recommend saved/DiffRec-....pth --users 196 186 --k 10

The checkpoint carries the settings it was trained with (as plain data); the dataset is loaded again
from the same data_path, so the token mapping is the one the model was trained on.
"""

import argparse
import json

import torch

from recbole_diffrec.config import declared_settings, get_model, is_ours
from recbole_diffrec.settings import SettingError
from recbole_diffrec.trainer import RESUME_MAY_CHANGE, changed_settings, from_plain, load_checkpoint

# Model settings an evaluation of a saved model may change: how the trained denoiser is run, not its weights.
EVALUATION_MAY_CHANGE = RESUME_MAY_CHANGE | {"sampling_steps", "sampling_noise"}


def load(checkpoint, overrides=None):
    """(config, (train, valid, test), model, trainer) with the checkpoint's weights loaded."""
    from recbole_diffrec.quick_start import prepare

    state = load_checkpoint(checkpoint)
    name = state["model"]
    if not state.get("model_class", "recbole_diffrec.").startswith("recbole_diffrec."):
        name = "recbole." + name
    external = from_plain(state["external_config"])
    saved = from_plain(state["config"])
    dataset = saved["dataset"]
    # Our models are rebuilt with the values they were trained with for every key their yaml declares,
    # not with today's defaults: a default changed later (L-DiffRec's beta_fixed, say) must not change
    # a saved model. (Those values are plain data: numbers, strings, lists, None.)
    model_class = get_model(name)
    config_dict = ({k: saved[k] for k in declared_settings(model_class) if k in saved}
                   if is_ours(model_class) else {})
    changed = changed_settings(overrides or {}, config_dict, EVALUATION_MAY_CHANGE)
    if changed:
        key = changed[0]
        raise SettingError(key, overrides[key], f"the checkpoint was trained with {config_dict[key]!r}; a saved "
                           f"model may change only {', '.join(sorted(EVALUATION_MAY_CHANGE))} (and RecBole's "
                           "evaluation settings such as topk or metrics)")
    config_dict.update({k: v for k, v in external.items() if k not in ("model", "dataset")})
    config_dict.update({"show_progress": False, **(overrides or {})})
    # The training run's own settings (some from its config files, which may hold other models' keys)
    # are not checked for unknown names again; the overrides given now are.
    config, loaders, model, trainer = prepare(name, dataset, None, config_dict, unchecked=set(external))
    trainer._load_model_state(state)
    trainer.saved_model_file = str(checkpoint)
    model.eval()
    return config, loaders, model, trainer


def evaluate(checkpoint, overrides=None):
    """Test (and validation) metrics of a saved checkpoint."""
    _, (_, valid, test), _, trainer = load(checkpoint, overrides)
    return {
        "valid": {k: float(v) for k, v in trainer.evaluate(valid, load_best_model=False).items()},
        "test": {k: float(v) for k, v in trainer.evaluate(test, load_best_model=False).items()},
    }


@torch.no_grad()
def recommend(checkpoint, user_tokens, k=10, overrides=None):
    """{user token: [item tokens]}: the top-k items not in the user's training history."""
    _, (train, _, _), model, _ = load(checkpoint, overrides)
    dataset = train._dataset
    uid, iid = dataset.uid_field, dataset.iid_field
    tokens = [str(t) for t in user_tokens]
    unknown = [t for t in tokens if t not in dataset.field2token_id[uid]]
    if unknown:
        raise ValueError(f"user tokens {unknown} are not in dataset {dataset.dataset_name!r}")
    users = torch.as_tensor(dataset.token2id(uid, tokens), device=model.device).reshape(-1)
    scores = model.full_sort_predict(dataset_interaction(uid, users)).reshape(len(users), -1)
    seen = model.history.dense(users) > 0 if hasattr(model, "history") else torch.zeros_like(scores, dtype=bool)
    scores = scores.masked_fill(seen, float("-inf"))
    scores[:, 0] = float("-inf")
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return {t: dataset.id2token(iid, row).tolist() for t, row in zip(tokens, top)}


def dataset_interaction(uid_field, users):
    from recbole.data.interaction import Interaction

    return Interaction({uid_field: users})


def main(argv, command, prog):
    from recbole_diffrec.quick_start import _convert, parse_overrides

    parser = argparse.ArgumentParser(
        prog=prog, epilog="--key=value changes how the saved model is run or evaluated, e.g. --inference_steps=4 "
        f"--topk=[10,20,50]; of the model's settings only {', '.join(sorted(EVALUATION_MAY_CHANGE))} may change.")
    parser.add_argument("checkpoint")
    if command == "recommend":
        parser.add_argument("--users", nargs="+", required=True, help="user tokens as in the dataset files")
        parser.add_argument("--k", type=int, default=10)
    args, rest = parser.parse_known_args(argv)
    overrides = _convert(parse_overrides(rest))
    try:
        if command == "evaluate":
            print(json.dumps(evaluate(args.checkpoint, overrides), indent=1))
        else:
            for user, items in recommend(args.checkpoint, args.users, args.k, overrides).items():
                print(f"{user}\t{' '.join(items)}")
    except SettingError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
