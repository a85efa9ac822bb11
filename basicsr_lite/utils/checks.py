"""Value checks for option values: each returns None when the value is fine, else what is wrong
(the caller prefixes the option key). Used by the option schema and by constructors that check
their own arguments."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

Check = Callable[[Any], 'str | None']


def positive(value: Any) -> str | None:
    return None if value > 0 else f'must be > 0; got {value}.'


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else f'must be >= 0; got {value}.'


def in_unit_interval(value: float) -> str | None:
    return None if 0 <= value < 1 else f'must be in [0, 1); got {value}.'


def probability(value: Any) -> str | None:
    return None if 0 <= value <= 1 else f'must be a probability in [0, 1]; got {value}.'


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def probabilities(length: int | None = None) -> Check:
    """A list of probabilities (``length`` of them if given) that sums to 1."""
    def check(values: Any) -> str | None:
        if not isinstance(values, (list, tuple)) or not all(_is_number(v) for v in values):
            return f'must be a list of numbers; got {values!r}.'
        if length is not None and len(values) != length:
            return f'must have {length} probabilities; got {len(values)}: {list(values)}.'
        if any(v < 0 for v in values):
            return f'probabilities must be >= 0; got {list(values)}.'
        if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            return f'probabilities must sum to 1; {list(values)} sums to {sum(values):g}.'
        return None
    return check


def value_range(low: float | None = None, high: float | None = None) -> Check:
    """A ``[min, max]`` pair with min <= max, both within ``[low, high]`` where given."""
    def check(values: Any) -> str | None:
        if not isinstance(values, (list, tuple)) or len(values) != 2 or \
                not all(_is_number(v) for v in values):
            return f'must be a range [min, max] of two numbers; got {values!r}.'
        lo, hi = values
        if lo > hi:
            return f'min > max in [{lo}, {hi}].'
        if low is not None and lo < low:
            return f'must be >= {low}; got [{lo}, {hi}].'
        if high is not None and hi > high:
            return f'must be <= {high}; got [{lo}, {hi}].'
        return None
    return check


def odd_size(minimum: int = 1) -> Check:
    """An odd integer >= ``minimum`` (kernel sizes: an odd size has a centre pixel)."""
    def check(value: Any) -> str | None:
        if value % 2 == 0 or value < minimum:
            return f'must be an odd integer >= {minimum}; got {value}.'
        return None
    return check


def one_of_each(allowed: Sequence[str]) -> Check:
    """A non-empty list whose entries are all in ``allowed``."""
    def check(values: Any) -> str | None:
        if not isinstance(values, (list, tuple)) or not values:
            return f'must be a non-empty list; got {values!r}.'
        unknown = [v for v in values if v not in allowed]
        if unknown:
            return f'unknown entries {unknown}; expected some of {", ".join(allowed)}.'
        return None
    return check
