"""The errors a user can cause, one type per family. Each message names what is wrong, the value given and
what is allowed or how to fix it; the command line prints it as one line and exits with status 2.

- :class:`SettingError`: a setting (command line, yaml, ``config_dict``, a model name, serving arguments).
- :class:`DataError`: the data (a missing dataset or file, rows that do not parse, a split a model cannot use).
- :class:`CheckpointError`: a checkpoint (missing, truncated, unsafe, of another model or other data).
- :class:`TrainingDiverged`: a non-finite training loss (the settings or the data); the snapshot is kept.
"""


class UserError(ValueError):
    """Base of the errors a user can cause and fix (not faults of the code)."""

    def __reduce__(self):  # pickles whole, so a worker process can hand it to its parent
        return type(self), self.args


class SettingError(UserError):
    """An invalid setting. The message names the key, the value given and what is allowed."""

    def __init__(self, key, value, allowed):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid setting {key}={value!r}: {allowed}")

    def __reduce__(self):
        return type(self), (self.key, self.value, self.allowed)


class RecBoleSettingError(SettingError):
    """A setting RecBole's own checks refused; the message is RecBole's."""

    def __init__(self, message):
        self.key, self.value, self.allowed = None, None, message
        UserError.__init__(self, f"invalid settings: {message}")

    def __reduce__(self):
        return type(self), (self.allowed,)


class DataError(UserError):
    """Data that cannot be used as given."""


class CheckpointError(UserError):
    """A checkpoint that cannot be used."""


class TrainingDiverged(UserError, FloatingPointError):
    """Training met a non-finite loss (too high a learning rate, say); the message names the epoch, the batch
    and the snapshot to resume from, which is kept."""


class OutputError(UserError):
    """A file or folder the run must write cannot be written (the system's reason and the path)."""


class NonFiniteScores(UserError, FloatingPointError):
    """A model scored items NaN or +inf at evaluation: no metric is reported and nothing is saved as best."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds more than tensors and plain data (loading it could run code)."""
