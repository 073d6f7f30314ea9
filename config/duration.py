"""Human durations such as "90s", "30m", "2h" or "1d"."""

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str | int | float) -> float:
    """Return seconds. A bare number means seconds. Raises ValueError naming the input."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d, e.g. 2h)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds
