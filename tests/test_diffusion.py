"""Diffusion math against values computed independently (closed forms, step-by-step references)."""

import math

import numpy as np
import pytest
import torch

from recbole_diffrec.core.diffusion import GaussianDiffusion
from recbole_diffrec.core.sampler import TimestepSampler
from recbole_diffrec.core.schedules import (
    binomial_betas,
    cosine_betas,
    linear_betas,
    linear_variance_betas,
    make_betas,
)
from recbole_diffrec.networks.timesteps import timestep_embedding


def test_linear_schedule_endpoints_and_spacing():
    b = linear_betas(5, 0.1, 0.5)
    assert np.allclose(b, [0.1, 0.2, 0.3, 0.4, 0.5])


def test_linear_variance_makes_one_minus_alphabar_linear():
    b = linear_variance_betas(40, 0.005 * 0.005, 0.005 * 0.01)
    one_minus_alpha_bar = 1 - np.cumprod(1 - b)
    assert np.allclose(one_minus_alpha_bar, np.linspace(0.005 * 0.005, 0.005 * 0.01, 40), rtol=1e-10, atol=0)


def test_cosine_schedule_matches_closed_form_alpha_bar():
    steps = 10
    b = cosine_betas(steps)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    alpha_bar = np.cumprod(1 - b)
    expected = np.array([f((i + 1) / steps) / f(0) for i in range(steps)])
    assert np.allclose(alpha_bar[:-1], expected[:-1], rtol=1e-9)  # the last beta is clipped at 0.999


def test_binomial_schedule():
    assert np.allclose(binomial_betas(4), [1 / 5, 1 / 4, 1 / 3, 1 / 2])


def test_beta_fixed_sets_first_beta_only():
    free = make_betas("linear", 5, 0.1, 0.1, 0.5, False)
    fixed = make_betas("linear", 5, 0.1, 0.1, 0.5, True)
    assert fixed[0] == 1e-5 and np.array_equal(free[1:], fixed[1:])


@pytest.fixture
def diffusion():
    return GaussianDiffusion("x0", "linear", 0.1, 0.1, 0.9, steps=6, beta_fixed=False)


def test_q_sample_closed_form(diffusion):
    betas = np.linspace(0.01, 0.09, 6)
    ab = np.cumprod(1 - betas)
    x0 = torch.rand(3, 7)
    noise = torch.randn(3, 7)
    t = torch.tensor([0, 3, 5])
    got = diffusion.q_sample(x0, t, noise)
    for row, step in enumerate(t.tolist()):
        want = math.sqrt(ab[step]) * x0[row] + math.sqrt(1 - ab[step]) * noise[row]
        assert torch.allclose(got[row], want, atol=1e-6)


def test_posterior_mean_is_the_gaussian_product(diffusion):
    """Posterior mean from Bayes on q(x_t|x_{t-1}) q(x_{t-1}|x_0), computed from scratch."""
    betas = np.linspace(0.01, 0.09, 6)
    ab = np.cumprod(1 - betas)
    x0, xt = torch.rand(2, 4), torch.rand(2, 4)
    t = torch.tensor([2, 4])
    got = diffusion.q_posterior_mean(x0, xt, t)
    for row, s in enumerate(t.tolist()):
        # precision-weighted combination of N(sqrt(ab_{t-1}) x0, 1-ab_{t-1}) and N(xt/sqrt(a_t), b_t/a_t)
        a_t = 1 - betas[s]
        m1, v1 = math.sqrt(ab[s - 1]) * x0[row], 1 - ab[s - 1]
        m2, v2 = xt[row] / math.sqrt(a_t), betas[s] / a_t
        want = (m1 / v1 + m2 / v2) / (1 / v1 + 1 / v2)
        assert torch.allclose(got[row], want.float(), atol=1e-5)


def test_x0_from_eps_inverts_q_sample(diffusion):
    x0, noise = torch.rand(4, 9), torch.randn(4, 9)
    t = torch.tensor([0, 1, 4, 5])
    xt = diffusion.q_sample(x0, t, noise)
    assert torch.allclose(diffusion.predict_xstart_from_eps(xt, t, noise), x0, atol=1e-5)


def test_buffers_move_with_module_and_are_not_saved(diffusion):
    assert "betas" not in diffusion.state_dict()
    assert diffusion.to(torch.float64).betas.dtype == torch.float64


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), 4)
    freqs = np.exp(-math.log(10000) * np.arange(2) / 2)
    want = np.concatenate([np.cos(3 * freqs), np.sin(3 * freqs)])
    assert np.allclose(emb[1].numpy(), want, atol=1e-6)
    assert np.allclose(emb[0].numpy(), [1, 1, 0, 0])


def test_reweighted_x0_loss_golden(diffusion):
    """x0 objective weight SNR(t-1) - SNR(t), 1 at t = 0, times the per-row MSE."""
    betas = np.linspace(0.01, 0.09, 6)
    ab = np.cumprod(1 - betas)
    snr = ab / (1 - ab)
    x0 = torch.rand(3, 5)
    t = torch.tensor([0, 2, 5])
    zero = lambda x, _t: torch.zeros_like(x)  # noqa: E731
    got = diffusion.training_losses(zero, x0, t, reweight=True)
    mse = (x0 ** 2).mean(-1).double().numpy()
    want = mse * np.array([1.0, snr[1] - snr[2], snr[4] - snr[5]])
    assert np.allclose(got.double().numpy(), want, rtol=1e-5)
    assert torch.allclose(diffusion.training_losses(zero, x0, t, reweight=False), (x0 ** 2).mean(-1))


def _reference_p_sample(diffusion, denoiser, x, mean_type):
    """Paper-style reverse chain: per-step gathers from the posterior buffers."""
    for step in range(diffusion.steps - 1, -1, -1):
        t = torch.full((x.shape[0],), step)
        out = denoiser(x, t)
        x0 = out if mean_type == "x0" else diffusion.predict_xstart_from_eps(x, t, out)
        x = diffusion.q_posterior_mean(x0, x, t)
    return x


@pytest.mark.parametrize("mean_type", ["x0", "eps"])
def test_p_sample_equals_reference_chain(mean_type):
    d = GaussianDiffusion(mean_type, "linear-var", 0.005, 0.005, 0.01, steps=40)
    torch.manual_seed(0)
    w = torch.randn(6, 6) * 0.3
    denoiser = lambda x, t: torch.tanh(x @ w) * (1 + t[:, None] / 40)  # noqa: E731
    x = torch.rand(5, 6)
    assert torch.allclose(d.p_sample_loop(denoiser, x), _reference_p_sample(d, denoiser, x, mean_type), atol=1e-6)


def test_one_reverse_step_is_the_posterior_mean_plus_its_noise():
    """p_sample against Ho et al.'s step written out: mean coef1 x0 + coef2 x_t, std exp(log_var / 2)."""
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=10)
    denoiser = lambda x, t: 0.5 * x + 0.01 * t[:, None]  # noqa: E731
    x = torch.rand(4, 3)
    betas = d.betas.numpy()
    ab = np.cumprod(1 - betas)
    step = 6
    coef1 = betas[step] * np.sqrt(ab[step - 1]) / (1 - ab[step])
    coef2 = (1 - ab[step - 1]) * np.sqrt(1 - betas[step]) / (1 - ab[step])
    variance = betas[step] * (1 - ab[step - 1]) / (1 - ab[step])
    x0 = 0.5 * x + 0.06
    mean = coef1 * x0 + coef2 * x
    coefficients = dict(zip(d.reverse_timesteps(0), d.chain(d.reverse_timesteps(0))))[step]
    assert torch.allclose(d.p_sample(denoiser, x, step, coefficients), mean.float(), atol=1e-7)
    torch.manual_seed(3)
    noisy = d.p_sample(denoiser, x, step, coefficients, sampling_noise=True)
    torch.manual_seed(3)
    assert torch.allclose(noisy, (mean + np.sqrt(variance) * torch.randn_like(x)).float(), atol=1e-7)
    # no noise is added at the last step (t = 0)
    last = dict(zip(d.reverse_timesteps(0), d.chain(d.reverse_timesteps(0))))[0]
    assert torch.equal(d.p_sample(denoiser, x, 0, last, sampling_noise=True), d.p_sample(denoiser, x, 0, last))


def test_strided_chain_full_equals_paper_constants():
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=40)
    chain = d.chain(d.reverse_timesteps(0))
    for (c1, c2, _), step in zip(chain, range(39, -1, -1)):
        assert c1 == pytest.approx(d.posterior_mean_coef1[step].item(), rel=1e-9)
        assert c2 == pytest.approx(d.posterior_mean_coef2[step].item(), rel=1e-9)


def test_one_step_inference_is_the_x0_prediction():
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=40)
    denoiser = lambda x, t: x * 2 + t[:, None]  # noqa: E731
    x = torch.rand(3, 4)
    assert torch.allclose(d.p_sample_loop(denoiser, x, inference_steps=1), x * 2 + 39)
    assert d.reverse_timesteps(4) == (39, 26, 13, 0)


@pytest.mark.parametrize("mean_type", ["x0", "eps"])
@pytest.mark.parametrize("inference_steps", [0, 10, 4, 1])
@pytest.mark.parametrize("dims", [[200, 600], [300], [64, 32, 64]])
def test_factored_chain_equals_step_by_step_chain(mean_type, inference_steps, dims):
    from recbole_diffrec.networks import MLPDenoiser

    torch.manual_seed(0)
    d = GaussianDiffusion(mean_type, "linear-var", 0.005, 0.005, 0.01, steps=40)
    net = MLPDenoiser(500, dims).eval()
    x = (torch.rand(32, 500) < 0.05).float()
    factored = d.p_sample_loop(net, x, inference_steps=inference_steps)
    net.hidden_chain = False
    loop = d.p_sample_loop(net, x, inference_steps=inference_steps)
    assert torch.allclose(factored, loop, rtol=0, atol=5e-6), (factored - loop).abs().max()
    assert not torch.equal(factored, x)  # the chain did something


def test_factored_chain_with_forward_noise_and_without_noise():
    from recbole_diffrec.networks import MLPDenoiser

    torch.manual_seed(1)
    net = MLPDenoiser(300, [100]).eval()
    x = (torch.rand(16, 300) < 0.1).float()
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=20)
    results = []
    for factored in (True, False):
        torch.manual_seed(7)  # the same forward noise for both
        net.hidden_chain = factored
        results.append(d.p_sample_loop(net, x, sampling_steps=5))
    assert torch.allclose(*results, rtol=0, atol=5e-6)
    noiseless = GaussianDiffusion("x0", "linear-var", 0.0, 0.005, 0.01, steps=3)
    want = net(net(net(x, torch.full((16,), 2)), torch.full((16,), 1)), torch.full((16,), 0))
    assert torch.allclose(noiseless.p_sample_loop(net, x), want, rtol=0, atol=5e-6)


@pytest.mark.parametrize("case", ["norm", "dropout in training", "sampling noise"])
def test_chain_is_not_factored_where_it_would_differ(case, monkeypatch):
    from recbole_diffrec.networks import MLPDenoiser

    net = MLPDenoiser(50, [20], norm=case == "norm", dropout=0.5)
    net.train(case == "dropout in training")
    monkeypatch.setattr(MLPDenoiser, "affine_chain", lambda *a: pytest.fail("factored chain used"))
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=5)
    d.p_sample_loop(net, torch.rand(4, 50), sampling_noise=case == "sampling noise")


def test_sampler_uniform_until_history_full():
    s = TimestepSampler(steps=4, history=2)
    probs, full = s.probabilities()
    assert not full and torch.allclose(probs, torch.full((4,), 0.25, dtype=torch.float64))
    t, weight = s.sample(100)
    assert torch.all(weight == 1) and t.min() >= 0 and t.max() < 4


def test_sampler_importance_probabilities_golden():
    s = TimestepSampler(steps=3, history=2, uniform_prob=0.001)
    s.loss_history.copy_(torch.tensor([[1.0, 1.0], [3.0, 4.0], [0.0, 2.0]], dtype=torch.float64))
    s.history_count.fill_(2)
    rms = np.sqrt([1.0, 12.5, 2.0])
    want = rms / rms.sum() * 0.999 + 0.001 / 3
    probs, full = s.probabilities()
    assert full and np.allclose(probs.numpy(), want)
    t, weight = s.sample(50)
    assert np.allclose(weight.numpy(), want[t.numpy()] * 3)


def test_sampler_update_equals_sequential_fifo():
    """The vectorised update equals visiting the batch element by element (the paper's loop)."""
    rng = np.random.default_rng(1)
    steps, history = 5, 3
    s = TimestepSampler(steps, history)
    ref_hist, ref_count = np.zeros((steps, history)), np.zeros(steps, dtype=int)
    for _ in range(6):
        t = rng.integers(0, steps, 7)
        losses = rng.random(7)
        s.update(torch.from_numpy(t), torch.from_numpy(losses))
        for step, loss in zip(t, losses):
            if ref_count[step] == history:
                ref_hist[step, :-1] = ref_hist[step, 1:].copy()
                ref_hist[step, -1] = loss
            else:
                ref_hist[step, ref_count[step]] = loss
                ref_count[step] += 1
        assert np.allclose(s.loss_history.numpy(), ref_hist)
        assert np.array_equal(s.history_count.numpy(), ref_count)
    assert "loss_history" in s.state_dict() and "history_count" in s.state_dict()


def test_the_chain_products_are_recomputed_after_a_fused_optimizer_step():
    """A fused Adam step writes the weights without bumping their version: the cached W_in W_out must not
    outlive it (regression: evaluation after training used the first evaluation's product)."""
    from recbole_diffrec.networks import MLPDenoiser

    torch.manual_seed(0)
    net = MLPDenoiser(40, [16], dropout=0.0)
    d = GaussianDiffusion("x0", "linear-var", 0.005, 0.005, 0.01, steps=5)
    x = (torch.rand(8, 40) < 0.2).float()
    net.eval()
    d.p_sample_loop(net, x)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    net(x, torch.zeros(8, dtype=torch.long)).pow(2).mean().backward()
    optimizer.step()
    net.eval()
    factored = d.p_sample_loop(net, x)
    net.hidden_chain = False
    assert torch.allclose(factored, d.p_sample_loop(net, x), atol=5e-6, rtol=0)
