"""The MLP denoiser of DiffRec (Sec. 3.5 of the paper), with its timestep embedding and the reverse chain
run in its hidden space."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.core.sparse import SparseRows
from recbole_diffrec.networks.timesteps import timestep_embedding

Activation = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS: dict[str, Activation] = {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu}


class InputDropout(nn.Dropout):
    """Dropout whose mask on the CPU comes from one uniform draw compared with p: the same distribution
    as nn.Dropout, about 3x cheaper there for an item-sized input (torch's CPU bernoulli_ is slow). Other
    devices keep torch's fused dropout kernel (one launch instead of four). On sparse rows it drops stored
    values: the zeros stay zero either way, so the distribution is the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if isinstance(x, SparseRows):
            return x.with_values(self.forward(x.values))
        if x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))  # 0 or 1/(1-p), in place
        return x * keep


def init_linear(layer: nn.Linear) -> None:
    """Xavier-normal weights, N(0, 0.001) biases, as the paper's code."""
    fan_out, fan_in = layer.weight.shape
    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
    nn.init.normal_(layer.bias, 0.0, 0.001)


class InputLayer(nn.Module):
    """The denoiser's first layer, W_in x + W_t emb + b over [x, emb]: the interaction part kept item-major,
    (n x hidden), so that dense rows take one matrix product and sparse rows one gather-and-sum per non-zero
    (both with their weight gradients written straight into it, no slice of a wider weight)."""

    def __init__(self, linear: nn.Linear, n_features: int):
        super().__init__()
        weight = linear.weight.detach()
        self.item_weight = nn.Parameter(weight[:, :n_features].t().contiguous())
        self.step_weight = nn.Parameter(weight[:, n_features:].clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor | SparseRows, emb: torch.Tensor) -> torch.Tensor:
        items = x.matmul(self.item_weight) if isinstance(x, SparseRows) else x @ self.item_weight
        return items + F.linear(emb, self.step_weight, self.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint written before the item-major layout holds one (hidden x (n + e)) weight
        old = state_dict.pop(prefix + "weight", None)
        if old is not None:
            n = self.item_weight.shape[0]
            state_dict[prefix + "item_weight"] = old[:, :n].t().contiguous()
            state_dict[prefix + "step_weight"] = old[:, n:].contiguous()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MLPDenoiser(nn.Module):
    """Predicts x_0 (or the noise) from [x_t, embedding of t].

    The shape follows the paper's ``--dims``: `dims` lists the hidden sizes of the output half, from
    the bottleneck outwards, and the input half mirrors it. dims [200, 600] over n items gives
    (n + e) -> 600 -> 200 -> 600 -> n; dims [1000] gives (n + e) -> 1000 -> n. Every layer but the last
    is followed by the activation.

    Args:
        n_features: length of the vector being denoised (items, or the latent size for L-DiffRec).
        dims: hidden sizes, see above; non-empty, positive.
        emb_size: timestep embedding size e.
        activation: a key of ACTIVATIONS.
        dropout: dropout on the input vector.
        norm: L2-normalise the input vector first.
        hidden_chain: let the reverse chain run in the hidden space (:meth:`affine_chain`) where it is
            exact; False runs it step by step through the whole network (benchmarks, tests).
    """

    def __init__(self, n_features: int, dims: list[int], emb_size: int = 10, activation: str = "tanh",
                 dropout: float = 0.5, norm: bool = False, hidden_chain: bool = True):
        super().__init__()
        self.hidden_chain = hidden_chain
        out_dims = list(dims) + [n_features]
        in_dims = out_dims[::-1]
        self.emb_size = emb_size
        self.norm = norm
        self.act = ACTIVATIONS[activation]
        self.emb_layer = nn.Linear(emb_size, emb_size)
        in_layers = [nn.Linear(a, b) for a, b in zip([in_dims[0] + emb_size] + in_dims[1:-1], in_dims[1:])]
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.drop = InputDropout(dropout)
        for layer in [self.emb_layer, *in_layers, *self.out_layers]:  # the paper's initialisation, in its order
            init_linear(layer)
        self.in_layers = nn.ModuleList([InputLayer(in_layers[0], n_features), *in_layers[1:]])

    def forward(self, x: torch.Tensor | SparseRows, t: torch.Tensor) -> torch.Tensor:
        """x: dense rows, or :class:`SparseRows` (the first layer then reads only their non-zeros)."""
        emb = self.emb_layer(timestep_embedding(t, self.emb_size))
        if self.norm:
            x = F.normalize(x.to_dense() if isinstance(x, SparseRows) else x)
        # the first layer on [x, emb] without building the concatenation (an item-sized copy)
        h = self.act(self.in_layers[0](self.drop(x), emb))
        for layer in self.in_layers[1:]:
            h = self.act(layer(h))
        last = len(self.out_layers) - 1
        for i, layer in enumerate(self.out_layers):
            h = layer(h)
            if i != last:
                h = self.act(h)
        return h

    def runs_hidden_chain(self) -> bool:
        """Whether the reverse chain runs in the hidden space: `hidden_chain` is on and :meth:`affine_chain`
        computes what repeated `forward` calls would (no input normalisation, which is not linear, and no
        active dropout)."""
        return self.hidden_chain and not self.norm and (not self.training or self.drop.p == 0)

    @torch.no_grad()
    def affine_chain(self, x: torch.Tensor | SparseRows, timesteps: tuple[int, ...],
                     coefficients: list[tuple[float, float]]) -> torch.Tensor:
        """Run x <- a * f(x, t) + b * x over `timesteps` with (a, b) from `coefficients`; return the last x.

        Equal, up to float rounding, to calling `forward` once per step, but without leaving the hidden
        space. The network is f(x) = W_out u(W_in x + c_t) + b_out: the first layer is linear in x and the
        last one linear in u. Write every x of the chain as x = gamma * x_init + W_out s + delta * b_out
        (s a hidden-size vector per row, gamma and delta scalars); then W_in x, all the next step needs,
        follows from W_in x_init once and (W_in W_out) u per step. Only the first and last steps touch
        the item-sized layers: the reverse chain over T steps costs about 2 item-sized products instead
        of 2T.
        """
        first, last = cast(InputLayer, self.in_layers[0]), cast(nn.Linear, self.out_layers[-1])
        w_in, w_out, b_out = first.item_weight, last.weight, last.bias  # W_in is stored transposed: (n x hidden)
        z = x.matmul(w_in) if isinstance(x, SparseRows) else x @ w_in  # W_in x, the only use of x inside the chain
        s = z.new_zeros(z.shape[0], w_out.shape[1])
        gamma, delta = 1.0, 0.0
        hidden = [*self.in_layers[1:], *self.out_layers[:-1]]
        chain = list(zip(timesteps, coefficients))
        if len(chain) > 1:  # a one-step chain never needs W_in of its result
            w_in_w_out, w_in_b_out = self._chain_products()
        for i, (step, (a, b)) in enumerate(chain):
            t = torch.full((1,), step, dtype=torch.long, device=z.device)
            offset = F.linear(self.emb_layer(timestep_embedding(t, self.emb_size)), first.step_weight, first.bias)
            u = self.act(z + offset)
            for layer in hidden:
                u = self.act(layer(u))
            if i + 1 < len(chain):
                z = a * (u @ w_in_w_out.T + w_in_b_out) + b * z
            s = a * u + b * s
            gamma, delta = b * gamma, a + b * delta
        out = torch.addmm(delta * b_out, s, w_out.T)
        if gamma == 0:
            return out
        return x.add_to(out, gamma) if isinstance(x, SparseRows) else out + gamma * x

    def train(self, mode: bool = True) -> "MLPDenoiser":
        self._chain_cache = None  # the weights may change from here on (a fused optimizer step keeps versions)
        return super().train(mode)

    def _chain_products(self):
        """(W_in W_out, W_in b_out): a (hidden x n x hidden) product, the largest of an evaluation batch at a
        large catalogue, the same for every batch of an evaluation: kept from the first batch until the module
        is next switched between training and evaluation (``train()``/``eval()``, which every evaluation and
        every training epoch call) or its weights are replaced or written (their address or version)."""
        first, last = self.in_layers[0], self.out_layers[-1]
        key = tuple((p.data_ptr(), p._version) for p in (first.item_weight, last.weight, last.bias))
        cached = getattr(self, "_chain_cache", None)
        if cached is None or cached[0] != key:
            w_in = first.item_weight
            cached = (key, (w_in.T @ last.weight, w_in.T @ last.bias))
            self._chain_cache = cached
        return cached[1]
