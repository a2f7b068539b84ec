"""What a model expects as input: size, channels and value scale.

A model trained on bytes with ``Rescaling(1/255)`` as its first layer must
be given bytes; scoring it on [0, 1] images measures another model. We read
the preprocessing the model carries (``Rescaling``, ``Normalization``, also
inside nested `keras.applications` backbones) before its first layer with
weights, compose it into one affine map ``y = a x + b`` and ask which input
scale it turns into normalised values. Preprocessing done outside the model
(``preprocess_input`` of ResNet50 or MobileNetV2) cannot be seen: the scale
is then unknown and the user says it (``--input-scale``).
"""

import dataclasses
import math

import keras
import numpy as np

from explain_attn.graph import flat_graph

__all__ = ["SCALES", "InputExpectation", "describe_input"]

SCALES = {"unit": (0.0, 1.0), "byte": (0.0, 255.0), "symmetric": (-1.0, 1.0)}
"""The input scales, by name: their value ranges."""


@dataclasses.dataclass(frozen=True)
class InputExpectation:
    """What a model expects as input.

    Attributes:
        height: Input height, or ``None`` when the model takes any.
        width: Input width, or ``None``.
        channels: Input channels (1 for grayscale, 3 for RGB), or ``None``.
        scale: ``"unit"`` ([0, 1]), ``"byte"`` ([0, 255]), ``"symmetric"``
            ([-1, 1]) or ``None`` when the model does not say.
        note: One sentence: what is assumed and why.
    """

    height: int | None
    width: int | None
    channels: int | None
    scale: str | None
    note: str


def _size(value):
    return None if value is None else int(value)


def describe_input(model):
    """Returns the `InputExpectation` of ``model``.

    The scale comes from the ``Rescaling`` and ``Normalization`` layers
    the model applies before its first layer with trainable weights: their
    composition ``a x + b`` is applied to each candidate scale's range,
    and the candidate whose image is closest to a normalised range (a span
    near 2, centred near 0) wins, if its span is between 0.25 and 40. So
    ``Rescaling(1/255)`` and ``Rescaling(1/127.5, offset=-1)`` (MobileNetV3)
    mean ``"byte"``, ``Normalization`` with a mean near 0.45 means
    ``"unit"`` and one near 115 ``"byte"``. Without such layers the scale
    is ``None``.

    Args:
        model: A functional or built Sequential `keras.Model`.

    Returns:
        An `InputExpectation`.
    """
    graph = flat_graph(model)
    shape = tuple(graph.inputs[0].shape)
    height, width, channels = (
        (_size(s) for s in shape[1:4]) if len(shape) == 4 else (None,) * 3
    )
    steps = _preprocessing(graph)
    if not steps:
        return InputExpectation(
            height,
            width,
            channels,
            None,
            "The model has no Rescaling or Normalization layer: its "
            "preprocessing is outside the model; pass --input-scale "
            "(unit, byte or symmetric) if it was not trained on [0, 1].",
        )
    scale_factor, offset = 1.0, 0.0
    for _, factor, shift in steps:
        scale_factor, offset = scale_factor * factor, offset * factor + shift
    scale = _closest_scale(scale_factor, offset)
    names = ", ".join(type(layer).__name__ for layer, _, _ in steps)
    if scale is None:
        note = (
            f"The model's preprocessing ({names}: "
            f"{_affine(scale_factor, offset)}) fits no usual input scale; "
            "pass --input-scale."
        )
    else:
        low, high = SCALES[scale]
        note = (
            f"The model preprocesses its input itself ({names}: "
            f"{_affine(scale_factor, offset)}), so it expects {scale} "
            f"values in [{low:g}, {high:g}]."
        )
    return InputExpectation(height, width, channels, scale, note)


def _affine(factor, offset):
    sign = "-" if offset < 0 else "+"
    return f"x * {factor:.4g} {sign} {abs(offset):.4g}"


def _closest_scale(factor, offset):
    best, best_score = None, math.inf
    for name, (low, high) in SCALES.items():
        ends = sorted((factor * low + offset, factor * high + offset))
        span = ends[1] - ends[0]
        if not 0.25 <= span <= 40.0:
            continue
        score = abs(math.log(span / 2.0)) + abs((ends[0] + ends[1]) / 2.0)
        if score < best_score:
            best, best_score = name, score
    return best


def _preprocessing(graph):
    """``[(layer, factor, offset)]`` applied before the first weighted
    layer; per-channel values are averaged."""
    steps = []
    for tap in graph.taps.values():
        layer = tap.layer
        if isinstance(layer, keras.layers.InputLayer | keras.Model):
            continue
        if isinstance(layer, keras.layers.Rescaling):
            config = layer.get_config()
            steps.append(
                (
                    layer,
                    _mean(config.get("scale", 1.0)),
                    _mean(config.get("offset", 0.0)),
                )
            )
        elif isinstance(layer, keras.layers.Normalization):
            step = _normalization(layer)
            if step is None:
                break
            steps.append(step)
        elif isinstance(layer, keras.layers.Layer) and layer.trainable_weights:
            break
    return steps


def _mean(value):
    if isinstance(value, dict):  # A serialised array in the config.
        value = value.get("config", {}).get("value", 1.0)
    return float(np.mean(np.asarray(value, dtype=np.float64)))


def _normalization(layer):
    if layer.get_config().get("invert"):
        return None
    mean = getattr(layer, "mean", None)
    variance = getattr(layer, "variance", None)
    if mean is None or variance is None:
        return None
    mean = np.asarray(keras.ops.convert_to_numpy(mean), dtype=np.float64)
    variance = np.asarray(
        keras.ops.convert_to_numpy(variance), dtype=np.float64
    )
    deviation = float(np.mean(np.sqrt(np.maximum(variance, 1e-12))))
    return layer, 1.0 / deviation, -float(np.mean(mean)) / deviation
