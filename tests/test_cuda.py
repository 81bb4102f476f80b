"""On a CUDA device (skipped without one): a training step never waits on the host, the GPU computes
what the CPU computes, and a short run on ml-100k learns."""

import copy

import pytest
import torch

from recbole_diffrec.pipeline import prepare, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ON_GPU = {"show_progress": False, "state": "WARNING", "use_gpu": True}


@pytest.mark.parametrize(("model", "precision"), [("DiffRec", "auto"), ("TDiffRec", "auto"), ("LDiffRec", "auto"),
                                                  ("DiffRec", "bfloat16")])
def test_training_steps_never_sync_with_the_host(model, precision, workdir):
    _, (train, _, _), net, trainer = prepare(model, "ml-100k", None, {**ON_GPU, "train_precision": precision})
    assert next(net.parameters()).is_cuda
    trainer._train_epoch(train, 0)  # warm-up: allocator, cuBLAS, and the sampler's history fills
    loss = steps_without_sync(net, trainer, [trainer._to_device(b) for b in train])
    assert torch.isfinite(loss).item()


def steps_without_sync(net, trainer, batches):
    """The trainer's step on each batch with any synchronising call raising; returns the last loss."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for interaction in batches:
            trainer.optimizer.zero_grad()
            with torch.autocast("cuda", dtype=trainer.autocast_dtype or torch.float32,
                                enabled=trainer.autocast_dtype is not None):
                loss = net.calculate_loss(interaction)
            loss.backward()
            trainer.optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return loss


@pytest.mark.parametrize("model", ["DiffRec", "LDiffRec"])
@torch.no_grad()
def test_gpu_scores_match_the_cpu(model, workdir):
    _, _, net, _ = prepare(model, "ml-100k", None, {**ON_GPU, "use_gpu": False})
    net.eval()
    gpu = copy.deepcopy(net).to("cuda").eval()
    users = torch.arange(1, 201)
    cpu_scores = net.user_scores(users)
    gpu_scores = gpu.user_scores(users.cuda()).cpu()
    assert (cpu_scores - gpu_scores).abs().max() <= 1e-4 * cpu_scores.abs().max()
    agree = (cpu_scores.topk(10).indices == gpu_scores.topk(10).indices).float().mean()
    assert agree > 0.95  # the same top 10 up to near-ties


@torch.no_grad()
def test_gpu_training_loss_matches_the_cpu(workdir):
    _, _, net, _ = prepare("DiffRec", "ml-100k", None, {**ON_GPU, "use_gpu": False})
    net.eval()  # dropout off: the same function on both devices
    gpu = copy.deepcopy(net).to("cuda").eval()
    users = torch.arange(1, 201)
    x = net.inputs.dense(users)
    t = torch.arange(200) % net.diffusion.steps
    noise = torch.randn_like(x)
    cpu_loss = net.diffusion.training_losses(net.denoiser, x, t, noise)
    gpu_loss = gpu.diffusion.training_losses(gpu.denoiser, x.cuda(), t.cuda(), noise.cuda()).cpu()
    torch.testing.assert_close(gpu_loss, cpu_loss, rtol=1e-4, atol=1e-7)


def test_sampler_update_on_gpu_equals_the_cpu():
    from recbole_diffrec.core.sampler import TimestepSampler

    cpu, gpu = TimestepSampler(40, 10), TimestepSampler(40, 10).cuda()
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        t = torch.randint(0, 40, (400,), generator=generator)
        losses = torch.rand(400, generator=generator)
        cpu.update(t, losses)
        gpu.update(t.cuda(), losses.cuda())
    assert torch.equal(cpu.history_count, gpu.history_count.cpu())
    assert torch.equal(cpu.loss_history, gpu.loss_history.cpu())


def test_diffrec_learns_on_gpu(workdir):
    cpu = run("DiffRec", config_dict={"show_progress": False, "epochs": 12, "eval_step": 4, "stopping_step": 3,
                                      "use_gpu": False})["test_result"]
    gpu = run("DiffRec", config_dict={"show_progress": False, "epochs": 12, "eval_step": 4, "stopping_step": 3,
                                      "use_gpu": True})["test_result"]
    pop = run("Pop", config_dict={"show_progress": False, "use_gpu": True})["test_result"]
    assert gpu["ndcg@10"] > pop["ndcg@10"] * 1.1, (gpu, pop)
    # different random streams on the two devices: close, not equal
    assert abs(gpu["ndcg@10"] - cpu["ndcg@10"]) < 0.03, (gpu, cpu)


def test_use_gpu_false_means_the_cpu_and_auto_eval_batches_fill_the_gpu(workdir):
    from recbole_diffrec.data.loaders import CPU_EVAL_BATCH_USERS

    config, _, net, _ = prepare("DiffRec", "ml-100k", None, {**ON_GPU, "use_gpu": False})
    assert next(net.parameters()).device.type == "cpu"
    assert config["eval_batch_size"] == CPU_EVAL_BATCH_USERS * net.n_items
    config, _, net, _ = prepare("DiffRec", "ml-100k", None, ON_GPU)
    assert next(net.parameters()).is_cuda
    assert config["eval_batch_size"] == net.n_users * net.n_items  # ml-100k fits in one batch


# ---- every model of the pack (tests/test_device_guard.py guards the same models on the CPU) -----------------
from test_device_guard import CASES  # noqa: E402

GENERAL = [c for c in sorted(CASES) if c.split("@")[0] not in ("DiffuRec", "DNR")]
SPARSE = {"DiffRec": {"input_path": "sparse"}, "LDiffRec": {"input_path": "sparse"},
          "GiffCF": {"propagation": "sparse"}}


def _gpu_settings(case, **extra):
    return {**CASES[case], **ON_GPU, "eval_batch_users": 0, **extra}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_every_models_training_steps_never_sync_with_the_host(case, precision, workdir):
    """A few steps of the pack's trainer under torch.cuda.set_sync_debug_mode("error"), float32 and bfloat16
    autocast: no step waits on the host, and the loss stays finite."""
    _, (train, _, _), net, trainer = prepare(case.split("@")[0], "ml-100k", None,
                                             _gpu_settings(case, train_precision=precision))
    assert next(net.parameters()).is_cuda
    batches = [trainer._to_device(b) for _, b in zip(range(4), train)]
    trainer.optimizer.zero_grad()
    net.calculate_loss(batches[0]).backward()  # warm-up
    loss = steps_without_sync(net, trainer, batches[1:])
    assert torch.isfinite(loss).item()


@pytest.mark.parametrize("case", GENERAL)
@torch.no_grad()
def test_every_general_models_gpu_scores_match_the_cpu(case, workdir):
    """The same weights score the same on both devices (the sequential models draw noise at inference)."""
    name = case.split("@")[0]
    _, _, net, _ = prepare(name, "ml-100k", None, _gpu_settings(case, use_gpu=False))
    if "sampling_noise" in CASES[case]:
        net.settings["sampling_noise"] = False
    net.eval()
    gpu = copy.deepcopy(net).to("cuda").eval()
    gpu.device = torch.device("cuda")
    users = torch.arange(1, 201)
    cpu_scores = net.full_sort_predict({net.USER_ID: users}).reshape(200, -1)
    gpu_scores = gpu.full_sort_predict({net.USER_ID: users.cuda()}).reshape(200, -1).cpu()
    assert (cpu_scores - gpu_scores).abs().max() <= 1e-3 * cpu_scores.abs().max().clamp_min(1e-6)


@pytest.mark.parametrize("name", sorted(SPARSE))
@torch.no_grad()
def test_the_sparse_paths_on_cuda_equal_the_dense_ones(name, workdir):
    _, _, dense, _ = prepare(name, "ml-100k", None, _gpu_settings(name))
    _, _, sparse, _ = prepare(name, "ml-100k", None, _gpu_settings(name, **SPARSE[name]))
    sparse.load_state_dict(dense.state_dict())
    dense.eval(), sparse.eval()
    users = torch.arange(1, 101, device="cuda")
    a = dense.full_sort_predict({dense.USER_ID: users})
    b = sparse.full_sort_predict({sparse.USER_ID: users})
    assert (a - b).abs().max() <= 1e-3 * a.abs().max()


@pytest.mark.parametrize("name", ["DiffRec", "GiffCF", "FlowCF", "DNR"])
def test_resume_on_the_gpu_continues_the_run(name, workdir):
    from recbole_diffrec.training.checkpoint import load_checkpoint

    case = name if name in CASES else "DiffRec"
    _, (train, _, _), net, trainer = prepare(name, "ml-100k", None, _gpu_settings(case, epochs=3))
    trainer._train_epoch(train, 0)
    trainer._save_last(train, 1)
    saved = load_checkpoint(trainer.last_checkpoint_file, map_location="cpu")
    _, _, again, resumed = prepare(name, "ml-100k", None, _gpu_settings(case, epochs=3),
                                   resume_file=trainer.last_checkpoint_file)
    assert resumed.start_epoch == 1
    for key, value in again.state_dict().items():
        assert value.is_cuda and torch.equal(value.cpu(), saved["state_dict"][key].cpu()), key


@pytest.mark.parametrize("name", ["DiffRec", "GiffCF", "FlowCF", "DNR"])
def test_a_model_trained_on_the_gpu_serves_on_the_cpu(name, workdir):
    from recbole_diffrec.pipeline import recommend

    case = name if name in CASES else "DiffRec"
    checkpoint = run(name, config_dict=_gpu_settings(case, epochs=1))["checkpoint"]
    on_gpu = recommend(checkpoint, ["196", "405"], k=10)
    on_cpu = recommend(checkpoint, ["196", "405"], k=10, overrides={"use_gpu": False})
    assert set(on_cpu) == {"196", "405"} and all(len(v) == 10 for v in on_cpu.values())
    if name != "DNR":  # deterministic at inference: the same lists on both devices, up to near-ties
        assert sum(a == b for u in on_cpu for a, b in zip(on_cpu[u], on_gpu[u])) >= 16
