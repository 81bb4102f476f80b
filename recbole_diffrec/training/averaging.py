"""Weight averaging (``ema_decay``): a bias-corrected exponential moving average of the trainable weights."""

import torch


class WeightAverage:
    """An exponential moving average of a model's trainable weights (Polyak averaging, as diffusion models
    are commonly evaluated), bias-corrected: after t updates it is sum_i decay^(t-i) w_i over sum_i
    decay^(t-i), so it never leans towards the initial weights, however early it is read.

    Two sets of weights take turns in the model. During a training epoch the model holds the optimizer's
    weights and `held` the average; between epochs the other way round, so validation, the checkpoints
    and every evaluation see the averaged weights. `update` runs after every optimizer step; it reads no
    value back from the device."""

    def __init__(self, params, decay):
        self.params = list(params)
        self.decay = decay
        self.steps = 0
        self.held = [p.detach().clone() for p in self.params]

    def update(self):
        """Fold the optimizer's current weights into the average (the model holds them: mid-epoch)."""
        self.steps += 1
        d, t = self.decay, self.steps
        keep = d * (1 - d ** (t - 1)) / (1 - d ** t)  # the share of the average so far; 0 at the first update
        with torch.no_grad():
            torch._foreach_lerp_(self.held, self.params, 1 - keep)

    def swap(self):
        """Exchange the model's weights with the held ones (no copy)."""
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.data, self.held[i] = self.held[i], p.data

    def state(self):
        return {"steps": self.steps, "held": list(self.held)}

    def load_state(self, state):
        if len(state["held"]) != len(self.params):
            raise ValueError(f"the checkpoint's weight average has {len(state['held'])} tensors, the model "
                             f"{len(self.params)} trainable ones")
        self.steps = int(state["steps"])
        self.held = [t.to(device=p.device, dtype=p.dtype).clone() for t, p in zip(state["held"], self.params)]
