"""The sparse input path (input_path): the same numbers as the dense path, to float rounding."""

import pytest
import torch

from recbole_diffrec.pipeline import prepare

FAST = {"show_progress": False, "epochs": 2, "steps": 5, "eval_batch_users": 300, "eval_step": 1,
        "train_precision": "float32"}  # the dense path's products would otherwise run in bfloat16 on some CPUs


def _train_and_evaluate(name, settings):
    torch.manual_seed(0)
    _, (train, valid, test), model, trainer = prepare(name, config_dict=settings)
    losses = []
    for _ in range(settings["epochs"]):
        losses.append(trainer._train_epoch(train, len(losses)))
    return losses, trainer.evaluate(test, load_best_model=False), model


@pytest.mark.parametrize("name, extra", [
    ("DiffRec", {"dims_dnn": [64]}),
    ("LDiffRec", {"dims_dnn": [32], "n_cate": 3, "in_dims": [60], "ae_dropout": 0.0}),
    ("LDiffRec", {"dims_dnn": [32], "n_cate": 2, "in_dims": [60], "ae_dropout": 0.0, "decoder": "per_cluster",
                  "out_dims": [40]}),
])
def test_sparse_and_dense_paths_train_and_rank_alike(name, extra, workdir):
    """DiffRec's training input is dense either way (x_t carries noise everywhere), its evaluation reads
    the history sparse; L-DiffRec's encoders read the rows sparse in training too (input dropout off: the
    two paths draw their masks from different random streams, with the same distribution)."""
    settings = {**FAST, **extra}
    dense_losses, dense, dense_model = _train_and_evaluate(name, {**settings, "input_path": "dense"})
    sparse_losses, sparse, sparse_model = _train_and_evaluate(name, {**settings, "input_path": "sparse"})
    assert not dense_model.sparse_input and sparse_model.sparse_input
    assert sparse_losses == pytest.approx(dense_losses, rel=1e-4)
    assert dense.keys() == sparse.keys()
    for key in dense:
        assert abs(dense[key] - sparse[key]) <= 1e-4, (key, dense[key], sparse[key])
    assert dense["ndcg@10"] > 0.02  # a random ranking of ml-100k gets about 0.01


def test_the_sparse_reverse_chain_scores_as_the_dense_one(workdir):
    _, (train, _, _), model, _ = prepare("DiffRec", config_dict={**FAST, "dims_dnn": [64]})
    model.eval()
    users = torch.arange(1, 200)
    dense = model.denoise(model.denoiser, model.inputs.dense(users))
    sparse = model.denoise(model.denoiser, model.inputs.sparse(users))
    assert torch.allclose(dense, sparse, atol=1e-5, rtol=0)


def test_input_path_auto_is_sparse_from_20000_items(workdir):
    from recbole_diffrec.models.base import SPARSE_FROM_ITEMS

    _, _, model, _ = prepare("DiffRec", config_dict={**FAST, "dims_dnn": [64]})
    assert model.settings["input_path"] == "auto" and model.n_items < SPARSE_FROM_ITEMS and not model.sparse_input


def test_checkpoints_of_the_earlier_layout_load(workdir):
    """Checkpoints written before the item-major first layers hold one (hidden x (n + e)) weight for the
    denoiser's first layer and (out x n) weights for L-DiffRec's encoders: they load into the same model."""
    _, _, model, _ = prepare("LDiffRec", config_dict={**FAST, "dims_dnn": [32], "n_cate": 2, "in_dims": [60]})
    model.eval()
    state = model.state_dict()
    old = {}
    for key, value in state.items():
        if key.endswith("in_layers.0.item_weight"):
            prefix = key[: -len("item_weight")]
            old[prefix + "weight"] = torch.cat([value.t(), state[prefix + "step_weight"]], dim=1)
        elif key.endswith("in_layers.0.step_weight"):
            continue
        elif ".encoders." in key and key.endswith(".0.weight"):
            old[key] = value.t().contiguous()
        else:
            old[key] = value
    assert set(old) != set(state)
    _, _, fresh, _ = prepare("LDiffRec", config_dict={**FAST, "dims_dnn": [32], "n_cate": 2, "in_dims": [60]})
    with torch.no_grad():
        for parameter in fresh.parameters():
            parameter.zero_()
    fresh.load_state_dict(old)
    fresh.eval()
    users = torch.arange(1, 50)
    assert torch.equal(fresh.user_scores(users), model.user_scores(users))
