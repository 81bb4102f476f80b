"""Where this process stands in a run: its rank, the number of processes, and the block of evaluation users it
scores. Computed once from the config (:meth:`RunContext.of`) and handed to the loaders and the trainer, so
that nothing steers RecBole by writing its settings.

RecBole's loaders and trainers read ``single_spec`` to decide whether to split batches over the ranks and wrap
the model in DistributedDataParallel; recbole-diffrec's evaluation loaders and trainer do their own
distribution (:class:`RunContext`). They hand RecBole a :class:`ConfigView`: the run's config, with the few
settings RecBole should read differently for that one object, and the config itself untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """One process's place in a run: ``rank`` of ``world_size`` processes on torch.distributed, or the only
    process (0 of 1, not distributed)."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @classmethod
    def of(cls, config) -> "RunContext":
        """The context of the run `config` belongs to; :meth:`Config._init_device` set its rank and size and
        started the process group when the run is distributed (``single_spec`` false)."""
        if config["single_spec"] is not False:
            return cls()
        return cls(rank=int(config["local_rank"]), world_size=int(config["world_size"]), distributed=True)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes checkpoints and cleans up: the only process, or rank 0."""
        return self.rank == 0

    def shard(self, count: int) -> tuple[int, int] | None:
        """This rank's contiguous block [low, high) of `count` evaluation users (None outside a distributed
        run): blocks of equal size in rank order, the last one shorter, no user repeated."""
        if not self.distributed:
            return None
        per = -(-count // self.world_size)
        return min(self.rank * per, count), min((self.rank + 1) * per, count)


class ConfigView:
    """A config as one of RecBole's objects should read it: every setting of `config`, except `overrides`.

    RecBole's loaders and trainers keep the config they are given and read it throughout their life; a view
    gives one object its own reading (one process, its batch size) while the config stays as the user set
    it. Writes go through to the config.
    """

    def __init__(self, config, **overrides: Any):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_overrides", overrides)

    def __getitem__(self, key):
        return self._overrides[key] if key in self._overrides else self._config[key]

    def __setitem__(self, key, value):
        self._config[key] = value

    def __contains__(self, key):
        return key in self._overrides or key in self._config

    def __getattr__(self, name):
        return getattr(self._config, name)

    def __setattr__(self, name, value):
        setattr(self._config, name, value)

    def __str__(self):
        return str(self._config)
