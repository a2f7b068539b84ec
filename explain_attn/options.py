"""Run options, and the argument checks that every stage shares.

A run (maps, CAMs, training, the report) is steered by a few settings that
every stage needs the same way: how many images go through the model at
once, on which devices, with which seed, and whether progress is printed.
`RunOptions` holds them as one value that travels inside the package; the
public functions keep their keyword arguments and build it once.

The checks below are the only place where a count, a choice or a share is
validated, so that every message reads the same way:
"`name` must be …. Received: name=…".

Example:

```python
options = RunOptions(batch_size=64, seed=1)
options = options.replace(devices=2)
check_positive_int("num_examples", 8)
```
"""

import dataclasses
import numbers

__all__ = [
    "RunOptions",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_positive_int",
    "check_share",
]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name, value, *, allow_none=False):
    """Returns ``value`` as an int when it is a positive integer.

    Args:
        name: The argument's name, as the caller wrote it.
        value: What was received (NumPy integers are accepted; ``True`` is
            not a count).
        allow_none: Whether ``None`` (no value) is accepted and returned.

    Raises:
        ValueError: "`name` must be a positive integer. Received: ...".
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        either = " or None" if allow_none else ""
        raise ValueError(
            f"`{name}` must be a positive integer{either}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_int(name, value, *, minimum):
    """Returns ``value`` as an int when it is an integer >= ``minimum``.

    Raises:
        ValueError: "`name` must be an integer of at least N. Received: ...".
    """
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer of at least {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_choice(name, value, choices):
    """Returns ``value`` when it is one of ``choices``.

    Raises:
        ValueError: "`name` must be one of a, b. Received: name=...".
    """
    if isinstance(value, str | int | float | bool | None) and value in choices:
        return value
    raise ValueError(
        f"`{name}` must be one of {', '.join(map(str, choices))}. "
        f"Received: {name}={value!r}"
    )


def check_fraction(name, value, *, low_open=False, high_open=False):
    """Returns ``value`` as a float when it is a number in [0, 1].

    Args:
        name: The argument's name.
        value: What was received.
        low_open: Whether 0 is excluded, as in (0, 1].
        high_open: Whether 1 is excluded, as in [0, 1).

    Raises:
        ValueError: "`name` must be a number in [0, 1]. Received: ...".
    """
    low, high = ("(" if low_open else "["), (")" if high_open else "]")
    inside = _is_number(value) and (
        (0.0 < value if low_open else 0.0 <= value)
        and (value < 1.0 if high_open else value <= 1.0)
    )
    if not inside:
        raise ValueError(
            f"`{name}` must be a number in {low}0, 1{high}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_share(name, value):
    """A share of a whole in (0, 1) exclusive, e.g. a confidence level."""
    return check_fraction(name, value, low_open=True, high_open=True)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run uses the machine: one value, checked once.

    Attributes:
        batch_size: Images per forward pass (per device, split by the
            strategy when several devices run).
        devices: ``None`` for the default device, a positive count, or
            ``"all"``, as `explain_attn.devices.parse_devices` reads it.
        strategy: A `tf.distribute.Strategy` built from ``devices``, or
            ``None`` for the default device.
        seed: The seed of every random choice of the run.
        progress: Called with one line of text per step, or ``None`` for
            silence.
    """

    batch_size: int = 32
    devices: object = None
    strategy: object = None
    seed: int = 0
    progress: object = None

    def __post_init__(self):
        check_positive_int("batch_size", self.batch_size)
        check_int("seed", self.seed, minimum=0)
        if self.progress is not None and not callable(self.progress):
            raise ValueError(
                "`progress` must be None or a callable taking one line of "
                f"text. Received: progress={self.progress!r}"
            )

    def replace(self, **changes):
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)
