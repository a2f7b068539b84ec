"""Value ranges of graph tensors, derived from the operations that made them.

A gate is a tensor whose values a squashing function bounds: a sigmoid
gives (0, 1), a hard sigmoid [0, 1] (its 0 and 1 are reached), BAM's
``1 + sigmoid`` (1, 2), MobileNetV3's ``ReLU(6)(x + 3) / 6`` [0, 1]. We
find them by interval arithmetic over the flat graph
(`explain_attn.graph`): each squashing function starts a range,
``+``, ``-``, ``*`` and ``/`` with constants or other bounded tensors
combine ranges, and operations that only move, pool or interpolate values
(reshape, upsampling, mean, max...) keep them. Every other operation gives
an unknown range.

Operations written with `keras.ops` have no public classes, so they are
recognised by their class name (``"Sigmoid"``, ``"Multiply"``...), the
name Keras gives them in ``model.operations``.
"""

import dataclasses
import math

import keras

from explain_attn.attention.kinds import layer_config

__all__ = ["KEEPING_RANGE", "ValueRange", "is_gate_range", "value_range"]


@dataclasses.dataclass(frozen=True)
class ValueRange:
    """An interval of values, with open or closed ends.

    Attributes:
        low: Lower bound.
        high: Upper bound.
        low_closed: Whether ``low`` itself can occur (a hard sigmoid's 0).
        high_closed: Whether ``high`` itself can occur.
        origin: What bounded the values, e.g. ``"sigmoid"``.
    """

    low: float
    high: float
    low_closed: bool = False
    high_closed: bool = False
    origin: str = ""

    def __str__(self):
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"{left}{_short(self.low)}, {_short(self.high)}{right}"

    def as_list(self):
        """``[low, high]`` for JSON."""
        return [float(self.low), float(self.high)]


def _short(value):
    return f"{value:g}"


def _point(value):
    return ValueRange(value, value, True, True, "constant")


_SQUASHING = {
    "sigmoid": ValueRange(0.0, 1.0, False, False, "sigmoid"),
    "hard_sigmoid": ValueRange(0.0, 1.0, True, True, "hard sigmoid"),
    "softmax": ValueRange(0.0, 1.0, False, False, "softmax"),
    "relu6": ValueRange(0.0, 6.0, True, True, "relu6"),
    "tanh": ValueRange(-1.0, 1.0, False, False, "tanh"),
}
"""Activations (by their Keras name) whose outputs are bounded."""

_OPERATIONS = {
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hard_sigmoid",
    "Softmax": "softmax",
    "Relu6": "relu6",
    "Tanh": "tanh",
}
"""`keras.ops` operations (by class name) that are activations."""

KEEPING_RANGE = {
    # Layers and operations whose outputs lie within their inputs' range.
    "Reshape",
    "Permute",
    "Flatten",
    "RepeatVector",
    "UpSampling2D",
    "UpSampling1D",
    "Dropout",
    "Identity",
    "Concatenate",
    "Maximum",
    "Minimum",
    "Average",
    "AveragePooling2D",
    "MaxPooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "ExpandDims",
    "Squeeze",
    "Transpose",
    "BroadcastTo",
    "Mean",
    "Max",
    "Min",
    "Tile",
    "Repeat",
    "Cast",
}


def value_range(graph, tensor, _memo=None):
    """The `ValueRange` of a symbolic ``tensor`` of ``graph``, or ``None``.

    Args:
        graph: The model's `explain_attn.graph.FlatGraph`.
        tensor: A symbolic tensor of it, or a Python number.

    Returns:
        A `ValueRange` when the operations that made ``tensor`` bound it,
        else ``None`` (unknown, e.g. a convolution's linear output).
    """
    if isinstance(tensor, int | float) and not isinstance(tensor, bool):
        return _point(float(tensor))
    memo = {} if _memo is None else _memo
    key = id(tensor)
    if key not in memo:
        memo[key] = None  # Guards against cycles.
        tap = graph.producer(tensor)
        memo[key] = None if tap is None else _tap_range(graph, tap, memo)
    return memo[key]


def is_gate_range(found):
    """Whether a range is a gate's: within [0, 2] and not a constant.

    ``[0, 2]`` holds sigmoid-like gates and BAM's ``1 + sigmoid``; it leaves
    out ReLU6 activations ([0, 6]) and tanh (-1, 1).
    """
    return (
        found is not None
        and found.low >= 0.0
        and found.high <= 2.0
        and found.high > found.low
        and found.origin != "constant"
    )


def _activation(layer):
    if not isinstance(layer, keras.layers.Layer):
        return None
    activation = layer_config(layer).get("activation")
    return activation if isinstance(activation, str) else None


def _tap_range(graph, tap, memo):
    layer = tap.layer
    name = type(layer).__name__
    activation = _activation(layer) or _OPERATIONS.get(name)
    if name == "Softmax":
        activation = "softmax"
    if activation is not None:
        return _SQUASHING.get(activation)
    if name == "ReLU":
        return _relu_range(layer_config(layer))
    arguments = [value_range(graph, value, memo) for value in _operands(tap)]
    if not arguments or any(found is None for found in arguments):
        return None
    if name in KEEPING_RANGE:
        return _union(arguments)
    if name == "Rescaling":
        config = layer_config(layer)
        scale, offset = config.get("scale"), config.get("offset")
        if not isinstance(scale, int | float):
            return None
        scaled = _product(arguments[0], _point(float(scale)))
        return _sum(scaled, _point(float(offset or 0.0)))
    return _arithmetic(name, arguments)


def _operands(tap):
    values = keras.tree.flatten(list(tap.arguments))
    return [
        value
        for value in values
        if isinstance(value, keras.KerasTensor)
        or (isinstance(value, int | float) and not isinstance(value, bool))
    ]


def _relu_range(config):
    high = config.get("max_value")
    if high is None or config.get("negative_slope", 0.0) != 0.0:
        return None
    return ValueRange(0.0, float(high), True, True, "relu")


def _arithmetic(name, arguments):
    if name in ("Add", "Subtract", "Multiply") and len(arguments) >= 2:
        combine = {"Add": _sum, "Subtract": _difference}.get(name, _product)
        result = arguments[0]
        for other in arguments[1:]:
            result = combine(result, other)
        return result
    if name in ("Divide", "TrueDivide") and len(arguments) == 2:
        divisor = arguments[1]
        if divisor.low == divisor.high and divisor.low != 0:
            return _product(arguments[0], _point(1.0 / divisor.low))
    return None


def _origin(*ranges):
    names = [r.origin for r in ranges if r.origin != "constant"]
    return names[0] if names else "constant"


def _union(ranges):
    low = min(ranges, key=lambda r: (r.low, not r.low_closed))
    high = max(ranges, key=lambda r: (r.high, r.high_closed))
    return ValueRange(
        low.low, high.high, low.low_closed, high.high_closed, _origin(*ranges)
    )


def _sum(first, second):
    return ValueRange(
        first.low + second.low,
        first.high + second.high,
        first.low_closed and second.low_closed,
        first.high_closed and second.high_closed,
        _origin(first, second),
    )


def _difference(first, second):
    negated = ValueRange(
        -second.high,
        -second.low,
        second.high_closed,
        second.low_closed,
        second.origin,
    )
    return _sum(first, negated)


def _product(first, second):
    corners = [
        (a * b, a_closed and b_closed)
        for a, a_closed in (
            (first.low, first.low_closed),
            (first.high, first.high_closed),
        )
        for b, b_closed in (
            (second.low, second.low_closed),
            (second.high, second.high_closed),
        )
    ]
    if any(math.isnan(value) for value, _ in corners):
        return None
    low = min(value for value, _ in corners)
    high = max(value for value, _ in corners)
    return ValueRange(
        low,
        high,
        any(closed for value, closed in corners if value == low),
        any(closed for value, closed in corners if value == high),
        _origin(first, second),
    )
