"""DNR (Du et al. 2023): one-step prediction averaged over draws, and a run of RecBole's sequential protocol."""

import pytest
import torch

DNR_TINY = {"show_progress": False, "epochs": 2, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 10,
            "inference_start": 4, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1,
            "train_precision": "float32"}


def test_dnr_predicts_in_one_step_and_averages_its_draws(workdir):
    """A recommendation is the log of the mean item distribution over the draws, each one denoiser call at
    inference_start from pure noise."""
    from recbole_diffrec.pipeline import prepare

    _, (train, _, test), model, _ = prepare("DNR", config_dict={**DNR_TINY, "inference_draws": 3})
    model.eval()
    interaction = next(iter(test))[0]
    torch.manual_seed(5)
    got = model.full_sort_predict(interaction)
    torch.manual_seed(5)
    batch = interaction["item_id_list"].shape[0]
    t = torch.full((batch,), 4)
    want = sum(torch.softmax(model.to_items(model.estimate_h0(interaction, torch.randn(batch, 16), t)), -1)
               for _ in range(3)) / 3
    assert torch.allclose(got, torch.log(want), atol=1e-6)
    assert torch.allclose(got.exp().sum(-1), torch.ones(batch), atol=1e-5)


@pytest.mark.slow
def test_dnr_trains_and_tests_on_ml100k_with_the_sequential_protocol(workdir):
    from recbole_diffrec.pipeline import prepare, run

    _, (train, _, _), model, trainer = prepare("DNR", config_dict=DNR_TINY)
    losses = [trainer._train_epoch(train, epoch) for epoch in range(3)]
    assert losses[2] < losses[0]
    result = run("DNR", config_dict=DNR_TINY)
    assert {"hit@10", "ndcg@10"} <= set(result["test_result"])
    assert result["test_result"]["hit@20"] > 20 / 1682  # above a random ranking's hit rate
