"""Reading and validating settings: every key read once, with an error naming key, value and what is allowed."""


class SettingError(ValueError):
    """An invalid setting. The message names the key, the value given and what is allowed."""

    def __init__(self, key, value, allowed):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid setting {key}={value!r}: {allowed}")

    def __reduce__(self):  # pickles whole, so a worker process can hand it to its parent
        return type(self), (self.key, self.value, self.allowed)


class SettingsReader:
    """Typed accessors over a RecBole Config (or a dict); records the keys it read."""

    def __init__(self, config):
        self.config = config
        self.read = {}

    def raw(self, key):
        try:
            value = self.config[key]
        except KeyError:
            value = None
        if value is None:
            raise SettingError(key, None, "missing; declare it in the model's yaml or pass --{}=...".format(key))
        self.read[key] = value
        return value

    def optional(self, key):
        try:
            value = self.config[key]
        except KeyError:
            value = None
        self.read[key] = value
        return value

    def boolean(self, key):
        value = self.raw(key)
        if not isinstance(value, bool):
            raise SettingError(key, value, "must be True or False")
        return value

    def choice(self, key, options):
        value = self.raw(key)
        if value not in options:
            raise SettingError(key, value, f"must be one of {list(options)}")
        return value

    def integer(self, key, low=None, high=None, high_name=None):
        """`high_name` names the setting the upper bound comes from, for the message."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(key, value, "must be an integer")
        _check_range(key, value, low, high, False, False, high_name)
        return value

    def number(self, key, low=None, high=None, low_open=False, high_open=False):
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(key, value, "must be a number")
        _check_range(key, value, low, high, low_open, high_open)
        return float(value)

    def int_list(self, key, allow_empty=False, low=1):
        value = self.raw(key)
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SettingError(key, value, "must be a list of integers, e.g. [300]")
        if not value and not allow_empty:
            raise SettingError(key, value, "must not be empty")
        if any(v < low for v in value):
            raise SettingError(key, value, f"every entry must be >= {low}")
        return list(value)


def _check_range(key, value, low, high, low_open, high_open, high_name=None):
    if low is not None and (value < low or (low_open and value == low)):
        raise SettingError(key, value, f"must be {'>' if low_open else '>='} {low}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"{high_name}={high}" if high_name else f"{high}"
        raise SettingError(key, value, f"must be {'<' if high_open else '<='} {bound}")
