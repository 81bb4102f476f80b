"""The training step's precision (train_precision), the fused optimizer and the input dropout."""

import pytest
import torch

from recbole_diffrec.networks.denoiser import InputDropout
from recbole_diffrec.pipeline import prepare
from recbole_diffrec.settings import SettingError
from recbole_diffrec.training import precision as precision_module
from recbole_diffrec.training.precision import training_autocast_dtype

FAST = {"show_progress": False, "epochs": 1, "steps": 5, "dims_dnn": [64], "eval_batch_users": 256}
CPU = torch.device("cpu")


def test_precision_choices(monkeypatch):
    assert training_autocast_dtype("float32", CPU) is None
    assert training_autocast_dtype("bfloat16", CPU) is torch.bfloat16
    monkeypatch.setattr(precision_module, "native_cpu_bfloat16", lambda: True)
    assert training_autocast_dtype("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(precision_module, "native_cpu_bfloat16", lambda: False)
    assert training_autocast_dtype("auto", CPU) is None  # emulated bfloat16 would be slower than float32
    # auto never picks bfloat16 on a GPU, whatever it supports
    assert training_autocast_dtype("auto", torch.device("cuda")) is None
    with pytest.raises(SettingError, match=r"train_precision='half'.*auto.*float32.*bfloat16"):
        training_autocast_dtype("half", CPU)


def test_bfloat16_on_a_gpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(SettingError, match=r"train_precision='bfloat16'.*Old GPU.*no bfloat16"):
        training_autocast_dtype("bfloat16", torch.device("cuda"))


def test_a_bad_precision_is_refused_before_any_data_loads(workdir):
    with pytest.raises(SettingError, match=r"train_precision='fp16'"):
        prepare("DiffRec", config_dict={**FAST, "train_precision": "fp16"})


def _output_layer_dtypes(net, trainer, train, valid):
    seen = []
    layer = net.denoiser.out_layers[-1]
    handle = layer.register_forward_hook(lambda module, args, out: seen.append((module.training, out.dtype)))
    try:
        trainer._train_epoch(train, 0)
        net.eval()
        scores = net.user_scores(torch.arange(1, 9))
    finally:
        handle.remove()
    return {dtype for training, dtype in seen if training}, scores


@pytest.mark.parametrize(("precision", "expected"), [("bfloat16", torch.bfloat16), ("float32", torch.float32)])
def test_training_step_runs_in_the_set_precision_and_everything_else_in_float32(workdir, precision, expected):
    config, (train, valid, _), net, trainer = prepare("DiffRec",
                                                      config_dict={**FAST, "train_precision": precision})
    train_dtypes, scores = _output_layer_dtypes(net, trainer, train, valid)
    assert train_dtypes == {expected}
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters())


@pytest.mark.parametrize("model", ["DiffRec", "LDiffRec"])
def test_adam_is_fused_and_keeps_the_parameter_groups(workdir, model):
    extra = {"n_cate": 1} if model == "LDiffRec" else {}
    config, _, net, trainer = prepare(model, config_dict={**FAST, **extra, "learning_rate": 0.002})
    groups = trainer.optimizer.param_groups
    assert type(trainer.optimizer) is torch.optim.Adam and all(g["fused"] for g in groups)
    assert [g["lr"] for g in groups] == [g["lr"] for g in net.optimizer_groups(0.002)]
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in net.parameters() if p.requires_grad)


def test_input_dropout_keeps_the_distribution_of_dropout():
    torch.manual_seed(0)
    drop = InputDropout(0.3)
    x = torch.rand(400, 1000) + 0.5
    out = drop(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 400,000 draws: std of the mean 0.0007
    assert torch.allclose(out[kept], x[kept] / 0.7)
    # independent of position: every column keeps about 70% (400 draws each, 5 std = 0.115)
    assert (kept.float().mean(0) - 0.7).abs().max() < 0.115
    x.requires_grad_(True)
    out = drop(x)
    out.sum().backward()
    assert torch.allclose(x.grad, (out != 0).float() / 0.7)
    drop.eval()
    assert drop(x) is x
    assert InputDropout(0.0).train()(x) is x


def _concatenated_forward(self, x, t):
    """The denoiser as the paper writes it: one first layer over the concatenation [x, emb]."""
    from recbole_diffrec.networks.timesteps import timestep_embedding

    emb = self.emb_layer(timestep_embedding(t, self.emb_size))
    h = torch.cat([self.drop(x), emb], dim=-1)
    first = self.in_layers[0]  # its weight over [x, emb], written out as one matrix
    h = self.act(h @ torch.cat([first.item_weight, first.step_weight.T]) + first.bias)
    for layer in self.in_layers[1:]:
        h = self.act(layer(h))
    for i, layer in enumerate(self.out_layers):
        h = layer(h)
        if i != len(self.out_layers) - 1:
            h = self.act(h)
    return h


def test_float32_training_step_equals_the_straightforward_step(workdir):
    """The fast float32 step (first layer without the concatenation, exact densifying, fused Adam) gives
    the straightforward step's loss, gradients and updated weights to float rounding."""
    import copy
    import functools
    import types

    config, (train, _, _), net, trainer = prepare("DiffRec", config_dict={**FAST, "dims_dnn": [32, 64],
                                                                          "train_precision": "float32"})
    batch = trainer._to_device(next(iter(train)))
    net.train()
    ref = copy.deepcopy(net)
    ref.denoiser.forward = types.MethodType(_concatenated_forward, ref.denoiser)
    ref.inputs.dense = functools.partial(ref.inputs.dense, exact_count=False)  # the padded index
    ref_optimizer = torch.optim.Adam(ref.parameters(), lr=trainer.optimizer.param_groups[0]["lr"], foreach=False)
    assert trainer.optimizer.param_groups[0]["fused"]
    for step in range(3):
        losses = []
        for model in (net, ref):
            torch.manual_seed(step)
            model.zero_grad(set_to_none=True)
            losses.append(model.calculate_loss(batch))
            losses[-1].backward()
        assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-6)
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            scale = q.grad.abs().max().item()
            assert (p.grad - q.grad).abs().max().item() <= 1e-5 * max(scale, 1e-3), name
            p.grad.copy_(q.grad)  # the optimizers get the same gradients: compare the updates alone
        trainer.optimizer.step()
        ref_optimizer.step()
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            assert (p - q).abs().max().item() <= 1e-6, name
            with torch.no_grad():
                p.copy_(q)  # the next step starts from the same weights
