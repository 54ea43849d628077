"""Constructor argument checks shared by the hardware blocks."""


def check_int(name, value, lo, hi=None):
    """Raise ``TypeError`` unless ``value`` is an int (not a bool), ``ValueError`` unless
    ``lo <= value`` (and ``value <= hi``); the message names the argument and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, not {value!r}")
