"""DiffuRec: its schedule and reverse step against the published formulas, the sequence layout, the
converter of released sequences, and a short run through RecBole's sequential protocol."""

import math
import os

import numpy as np
import pytest
import torch

from recbole_diffrec.core import GaussianDiffusion, make_betas
from recbole_diffrec.networks.timesteps import timestep_embedding
from recbole_diffrec.networks.transformer import DiffuRecApproximator

TINY = {"show_progress": False, "epochs": 2, "hidden_size": 32, "n_layers": 1, "n_heads": 2, "steps": 4,
        "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1, "eval_batch_size": 4096,
        "train_precision": "float32"}


HO = (1.0, 0.0001, 0.02)  # noise_scale, noise_min, noise_max: DiffuRec's defaults (properties/DiffuRec.yaml)


def test_the_truncated_linear_schedule_is_the_published_one():
    for steps in (32, 8, 20):
        scale = 1000 / steps
        start, end = scale * 0.0001 + 0.01, scale * 0.02 + 0.01
        if end > 1:
            end = scale * 0.001 + 0.01
        want = [start + (end - start) * i / (steps - 1) for i in range(steps)]
        assert np.allclose(make_betas("trunc-linear", steps, *HO, False), want, rtol=1e-12)
    assert make_betas("trunc-linear", 32, *HO, False)[0] == pytest.approx(0.013125)
    assert make_betas("trunc-linear", 32, *HO, False)[-1] == pytest.approx(0.635)


def test_noise_scale_multiplies_the_bounds_in_every_bounded_schedule():
    """One meaning of noise_scale: a multiplier on [noise_min, noise_max], by hand for each bounded schedule."""
    steps, scale, low, high = 10, 0.5, 0.001, 0.01
    grid = np.arange(steps) / (steps - 1)
    linear = scale * low + (scale * high - scale * low) * grid
    assert np.allclose(make_betas("linear", steps, scale, low, high, False), linear, rtol=1e-12)
    assert np.allclose(make_betas("scaled-linear", steps, scale, low, high, False), 100 * linear, rtol=1e-12)
    assert np.allclose(make_betas("trunc-linear", steps, scale, low, high, False), 100 * linear + 0.01, rtol=1e-12)
    variance = scale * low + (scale * high - scale * low) * grid  # 1 - alpha-bar, linear
    alpha_bar = 1 - variance
    expected = 1 - alpha_bar / np.r_[1.0, alpha_bar[:-1]]
    assert np.allclose(make_betas("linear-var", steps, scale, low, high, False), expected, rtol=1e-12)
    cosine = make_betas("cosine", steps, 1.0, 0.0, 0.0, False)
    assert np.array_equal(make_betas("cosine", steps, scale, low, high, False), cosine)  # no bounds


def test_a_reverse_step_with_the_large_variance():
    """DiffuRec's reverse step: the posterior mean given the x0 estimate, plus exp(log_var / 2) noise with
    log_var = log(beta_t) for t >= 1 and, at t = 0, no noise."""
    steps = 8
    d = GaussianDiffusion("x0", "trunc-linear", *HO, steps, beta_fixed=False, reverse_variance="large")
    betas = make_betas("trunc-linear", steps, *HO, False)
    ab = np.cumprod(1 - betas)
    posterior_1 = betas[1] * (1 - ab[0]) / (1 - ab[1])
    timesteps = d.reverse_timesteps(0)
    chain = dict(zip(timesteps, d.chain(timesteps)))
    for step in range(steps):
        want = math.log(betas[step]) if step >= 1 else math.log(posterior_1)
        assert chain[step][2] == pytest.approx(want, rel=1e-9)
    denoiser = lambda x, t: 0.3 * x  # noqa: E731
    x = torch.randn(5, 6, dtype=torch.float64)
    step = 5
    coef1 = betas[step] * np.sqrt(ab[step - 1]) / (1 - ab[step])
    coef2 = (1 - ab[step - 1]) * np.sqrt(1 - betas[step]) / (1 - ab[step])
    torch.manual_seed(4)
    got = d.p_sample(denoiser, x, step, chain[step], sampling_noise=True)
    torch.manual_seed(4)
    noise = torch.randn_like(x)
    assert torch.allclose(got, coef1 * 0.3 * x + coef2 * x + np.sqrt(betas[step]) * noise, atol=1e-12)


def test_reading_the_last_real_position_of_right_padded_rows_equals_left_padding():
    """RecBole pads sequences on the right and the model reads position len-1; DiffuRec's code pads on the
    left and reads the last position. Its attention masks padding queries only, so both read the same."""
    torch.manual_seed(0)
    net = DiffuRecApproximator(16, blocks=2, heads=2, dropout=0.0, lambda_uncertainty=0.01).double().eval()
    length, lengths = 7, torch.tensor([3, 7, 1, 5])
    items = torch.randn(4, length, 16, dtype=torch.float64)
    pad = torch.randn(16, dtype=torch.float64)  # the padding item's embedding, the same everywhere
    right = torch.stack([torch.cat([items[b, :n], pad.expand(length - n, 16)]) for b, n in enumerate(lengths)])
    left = torch.stack([torch.cat([pad.expand(length - n, 16), items[b, :n]]) for b, n in enumerate(lengths)])
    right_mask = (torch.arange(length)[None] < lengths[:, None]).double()
    left_mask = right_mask.flip(1)
    scale = torch.full((4, length, 16), 0.01, dtype=torch.float64)
    x_t, t = torch.randn(4, 16, dtype=torch.float64), torch.tensor([0, 3, 1, 2])
    a = net(right, x_t, t, right_mask, lengths - 1, scale=scale)
    b = net(left, x_t, t, left_mask, torch.full((4,), length - 1), scale=scale)
    assert torch.allclose(a, b, atol=1e-10)


def test_the_last_block_computed_at_the_read_position_alone_equals_the_whole_block():
    """The approximator runs its last block from the read position's query only; the values equal the
    block computed at every position and indexed there (float64, dropout off), and the gradients too."""
    torch.manual_seed(1)
    net = DiffuRecApproximator(16, blocks=2, heads=4, dropout=0.0, lambda_uncertainty=0.01).double().eval()
    lengths = torch.tensor([3, 7, 1, 5])
    history = torch.randn(4, 7, 16, dtype=torch.float64, requires_grad=True)
    mask = (torch.arange(7)[None] < lengths[:, None]).double()
    scale = torch.full((4, 7, 16), 0.01, dtype=torch.float64)
    x_t, t = torch.randn(4, 16, dtype=torch.float64), torch.tensor([0, 3, 1, 2])

    def whole(history):  # every position through every block, then the read position
        embedded_t = timestep_embedding(t.double() * net.time_scale, 16).double()
        h = history + scale * (x_t + net.time_embed(embedded_t)).unsqueeze(1)
        for block in net.blocks:
            h = block(h, mask)
        return net.norm(net.dropout(h))[torch.arange(4), lengths - 1]

    got, want = net(history, x_t, t, mask, lengths - 1, scale=scale), whole(history)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    (g_got,) = torch.autograd.grad(got.square().sum(), history)
    (g_want,) = torch.autograd.grad(want.square().sum(), history)
    assert torch.allclose(g_got, g_want, atol=1e-12, rtol=0)


def test_sequences_convert_to_time_ordered_interactions(tmp_path):
    from recbole_diffrec.data.convert import SplitError, convert_sequences

    src = tmp_path / "toy.txt"
    src.write_text("1 5 6 7\n2 6 8\n")
    target = convert_sequences(src, tmp_path / "out", "toy")
    lines = (target / "toy.inter").read_text().splitlines()
    assert lines == ["user_id:token\titem_id:token\ttimestamp:float", "1\t5\t0", "1\t6\t1", "1\t7\t2", "2\t6\t0",
                     "2\t8\t1"]
    (tmp_path / "bad.txt").write_text("1 5 x\n")
    with pytest.raises(SplitError, match="bad.txt:1"):
        convert_sequences(tmp_path / "bad.txt", tmp_path / "out")


def test_a_user_sample_keeps_whole_sequences_of_a_seeded_draw(tmp_path):
    from recbole_diffrec.data import convert

    src = tmp_path / "toy.txt"
    src.write_text("".join(f"{u} " + " ".join(str(10 * u + k) for k in range(u % 4 + 2)) + "\n" for u in range(1, 41)))
    target = convert.convert_sequences(src, tmp_path / "out", "toy7", sample=7, sample_seed=3)
    rows = [line.split("\t") for line in (target / "toy7.inter").read_text().splitlines()[1:]]
    users = sorted({int(r[0]) for r in rows})
    assert len(users) == 7
    for user in users:  # every kept user's whole sequence, in order
        mine = [r for r in rows if int(r[0]) == user]
        assert [int(r[1]) for r in mine] == [10 * user + k for k in range(user % 4 + 2)]
        assert [int(float(r[2])) for r in mine] == list(range(user % 4 + 2))
    again = convert.convert_sequences(src, tmp_path / "again", "toy7", sample=7, sample_seed=3)
    assert (again / "toy7.inter").read_text() == (target / "toy7.inter").read_text()  # fixed by (n, seed)
    other = convert.convert_sequences(src, tmp_path / "other", "toy7", sample=7, sample_seed=4)
    assert (other / "toy7.inter").read_text() != (target / "toy7.inter").read_text()
    with pytest.raises(convert.DataError, match="sample_users=41: must be between 1 and 40"):
        convert.convert_sequences(src, tmp_path / "bad", "bad", sample=41)


def test_the_converter_refuses_a_sample_of_the_split_folder(tmp_path, capsys):
    from recbole_diffrec.data import convert

    (tmp_path / "split").mkdir()
    with pytest.raises(SystemExit) as exit_:
        convert.main([str(tmp_path / "split"), "--sample_users", "5"])
    assert exit_.value.code == 2
    assert "--sample_users applies to a sequences file" in capsys.readouterr().err


@pytest.mark.slow
def test_diffurec_trains_and_tests_on_ml100k_with_the_sequential_protocol(workdir):
    from recbole_diffrec.pipeline import prepare, run

    config, (train, valid, test), model, trainer = prepare("DiffuRec", config_dict=TINY)
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["MODEL_TYPE"].name == "SEQUENTIAL"
    losses = [trainer._train_epoch(train, epoch) for epoch in range(3)]
    assert losses[2] < losses[0]  # it learns
    result = run("DiffuRec", config_dict=TINY)
    assert {"hit@10", "ndcg@10", "hit@20", "ndcg@20"} <= set(result["test_result"])
    assert all(np.isfinite(v) for v in result["test_result"].values())


def _ml100k_items_of(user):
    """(item, timestamp) pairs of a user in RecBole's bundled ml-100k, read from the file itself."""
    import recbole

    path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")
    with open(path) as handle:
        next(handle)
        rows = [line.split("\t") for line in handle]
    return [(r[1], float(r[3])) for r in rows if r[0] == user]


@pytest.mark.slow
@pytest.mark.parametrize("model, settings", [
    ("DiffuRec", {**TINY, "epochs": 1}),
    ("recbole.SASRec", {"show_progress": False, "epochs": 1, "loss_type": "CE", "train_neg_sample_args": None,
                        "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "hidden_size": 16, "inner_size": 32}),
])
def test_a_sequential_checkpoint_is_evaluated_and_serves_the_next_items(model, settings, workdir):
    """A saved sequential model (ours, or RecBole's with cross-entropy) loads again for evaluate and
    recommend; recommend reads the user's whole known sequence and never returns an item of it."""
    from recbole_diffrec.errors import SettingError
    from recbole_diffrec.pipeline import (
        evaluate,
        known_sequences,
        prepare,
        recommend,
        run,
    )

    result = run(model, config_dict=settings)
    again = evaluate(result["checkpoint"])
    assert {"hit@10", "ndcg@10"} <= set(again["test"])
    if model == "recbole.SASRec":  # deterministic: the saved weights give the run's own test metrics
        assert again["test"] == pytest.approx({k: float(v) for k, v in result["test_result"].items()})
    _, (train, valid, test), _, _ = prepare(model, config_dict=settings)
    ids = train._dataset.token2id(train._dataset.uid_field, ["196", "405"])
    for token, sequence in zip(["196", "405"], known_sequences((train, valid, test), ids)):
        raw = _ml100k_items_of(token)  # the whole sequence, every split, in time order
        assert sorted(train._dataset.id2token(train._dataset.iid_field, sequence)) == sorted(i for i, _ in raw)
        # RecBole orders by its min-max scaled float32 timestamps: about a second apart on ml-100k, so items
        # a second apart may tie; beyond that, time order, and the validation and test targets last
        times = dict(raw)
        tokens = train._dataset.id2token(train._dataset.iid_field, sequence).tolist()
        assert all(times[a] <= times[b] + 2 for a, b in zip(tokens, tokens[1:]))
        targets = [split._dataset.inter_feat[split._dataset.iid_field][split._dataset.inter_feat[
            split._dataset.uid_field] == int(train._dataset.token2id(train._dataset.uid_field, token))] for split in (valid, test)]
        assert sequence[-2:] == [int(targets[0][0]), int(targets[1][0])]
    recs = recommend(result["checkpoint"], ["196", "405"], k=20)
    for user in ("196", "405"):
        assert len(set(recs[user])) == 20 and "[PAD]" not in recs[user]
        assert not {i for i, _ in _ml100k_items_of(user)} & set(recs[user])
    unseen = 1682 - len(_ml100k_items_of("405"))
    with pytest.raises(SettingError, match=f"must be at most {unseen}, the items user 405 has not seen"):
        recommend(result["checkpoint"], ["405"], k=unseen + 1)


def test_looking_up_recboles_sequential_models_leaves_anomaly_detection_as_it_was():
    """RecBole's SINE turns autograd anomaly detection on when its package is imported; the lookup restores
    the setting (on, a check of every backward op slows training and raises from inside backward)."""
    from recbole_diffrec.registry import get_model

    assert not torch.is_anomaly_enabled()
    assert get_model("recbole.SASRec").__name__ == "SASRec" and get_model("recbole.SINE").__name__ == "SINE"
    assert not torch.is_anomaly_enabled()


@torch.no_grad()
def test_diffurec_inference_steps_all_is_the_published_chain_and_fewer_is_strided(workdir):
    """inference_steps 0 and T run today's chain (every reverse step, sampling noise): equal, for the same draws,
    to the reverse steps called one by one; fewer steps visit a strided subset ending at step 0."""
    from recbole_diffrec.pipeline import prepare

    _, (train, _, _), net, _ = prepare("DiffuRec", "ml-100k", None, {**TINY, "steps": 8})
    net.eval()
    batch = next(iter(train))
    steps = net.settings["steps"]

    def represent(k):
        net.settings["inference_steps"] = k
        torch.manual_seed(7)
        return net.representation(batch)

    torch.manual_seed(7)
    x = torch.randn(batch[net.ITEM_SEQ].shape[0], net.settings["hidden_size"])
    denoiser = net.denoiser_given(batch)
    timesteps = tuple(range(steps - 1, -1, -1))
    for step, coefficients in zip(timesteps, net.diffusion.chain(timesteps)):
        x = net.diffusion.p_sample(denoiser, x, step, coefficients, True)
    assert torch.equal(represent(0), x) and torch.equal(represent(steps), x)
    assert net.diffusion.reverse_timesteps(4) == (7, 5, 2, 0)
    assert not torch.equal(represent(4), x)
