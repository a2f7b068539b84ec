"""What a model predicts: one class per image, or one class per pixel.

A model whose output is ``(N, num_classes)`` is a classifier; one whose
output is per pixel, ``(N, H, W, K)`` (a softmax over ``K >= 2`` classes,
class 0 the background by our convention) or ``(N, H, W, 1)`` (a sigmoid:
foreground against background), is a segmentation model. Commands take
``--task classification|segmentation`` to state it; `check_task` refuses a
task the model's output contradicts. `pixel_score_head` finds the per-pixel
scores before the softmax or sigmoid, as `explain_attn.models.heads.
score_head` does for classifiers; the model is never modified.
"""

import keras
import tensorflow as tf

from explain_attn.graph import model_state

__all__ = [
    "CLASSIFICATION",
    "SEGMENTATION",
    "TASKS",
    "check_task",
    "model_task",
    "pixel_probability_function",
    "pixel_score_head",
    "predicted_labels",
    "unsupported_for_segmentation",
]

CLASSIFICATION = "classification"
SEGMENTATION = "segmentation"
TASKS = (CLASSIFICATION, SEGMENTATION)


def _output_shape(model):
    state = model_state(model)
    return tuple(state.graph.outputs[0].shape)


def model_task(model):
    """``"segmentation"`` for a per-pixel output, else ``"classification"``.

    Args:
        model: A `keras.Model` with one output.

    Returns:
        ``"segmentation"`` when the output is 4-D ``(N, H, W, K)``;
        ``"classification"`` when it is 2-D ``(N, K)``.

    Raises:
        ValueError: For any other output rank (no task is known for it).
    """
    state = model_state(model)
    model = state.model
    shape = _output_shape(state)
    if len(shape) == 4:
        return SEGMENTATION
    if len(shape) == 2:
        return CLASSIFICATION
    raise ValueError(
        f"Model {model.name!r} has output shape {shape}; explain-attn "
        "explains classifiers (N, num_classes) and segmentation models "
        "(N, H, W, num_classes)."
    )


def check_task(model, task=None):
    """The model's task, checked against the one the user stated.

    Args:
        model: The model.
        task: ``None`` (read it from the output), ``"classification"`` or
            ``"segmentation"``.

    Returns:
        The task.

    Raises:
        ValueError: If ``task`` is unknown or the output contradicts it.
    """
    state = model_state(model)
    model = state.model
    if task is not None and task not in TASKS:
        raise ValueError(
            f"--task must be one of {', '.join(TASKS)}. Received: --task {task}"
        )
    found = model_task(state)
    if task is not None and task != found:
        shape = _output_shape(state)
        what = (
            "one prediction per pixel"
            if found == SEGMENTATION
            else "one prediction per image"
        )
        raise ValueError(
            f"Model {model.name!r} gives {what} (output {shape}), so it is a "
            f"{found} model, not {task}. Give --task {found} or leave "
            "--task out."
        )
    return found


def unsupported_for_segmentation(what):
    """The `ValueError` of a path that does not take segmentation models."""
    return ValueError(
        f"{what} does not support segmentation models yet (their output is "
        "one prediction per pixel). Use `explain-attn report --task "
        "segmentation` or `explain-attn maps`."
    )


def _identity(values):
    return values


def _conv_logits(layer):
    """The per-pixel scores of ``layer`` (a Conv2D) before its activation,
    with its own live weights."""

    def logits(features):
        values = keras.ops.conv(
            features,
            layer.kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
        )
        return values + layer.bias if layer.use_bias else values

    return logits


def pixel_score_head(model):
    """The tensor and function giving a segmentation model's logits.

    When the model ends in a softmax or sigmoid (a ``Conv2D`` with that
    activation, a ``Softmax`` or an ``Activation`` layer), the scores are
    that activation's input, computed with the model's own weights;
    otherwise the output is taken as the logits.

    Returns:
        ``(tensor, function)``: the flat-graph tensor to fetch and the
        function turning it into ``(B, H, W, K)`` logits.

    Raises:
        ValueError: If the model is no segmentation model, or ends in a
            layer other than ``Conv2D`` with a softmax or sigmoid.
    """
    state = model_state(model)
    model = state.model
    graph = state.graph
    output = graph.outputs[0]
    if len(output.shape) != 4:
        raise unsupported_segmentation_head(model, output)
    tap = next((t for t in graph.taps.values() if t.output is output), None)
    if tap is None:
        return output, _identity
    layer = tap.layer
    activation = layer.get_config().get("activation")
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation)
        and activation in ("softmax", "sigmoid")
    ):
        return tap.input, _identity
    if activation in ("softmax", "sigmoid"):
        if not isinstance(layer, keras.layers.Conv2D):
            raise ValueError(
                f"Model {model.name!r} ends in a {type(layer).__name__} with "
                f"a {activation} activation; Seg-Grad-CAM needs the scores "
                f"before the {activation}. End the model with "
                f"Conv2D(activation=None) followed by an Activation layer."
            )
        return tap.input, _conv_logits(layer)
    return output, _identity


def unsupported_segmentation_head(model, output):
    return ValueError(
        f"Model {model.name!r} has output shape {tuple(output.shape)}, not "
        "one prediction per pixel (N, H, W, K): it is no segmentation model. "
        "Use a class-activation method such as grad_cam."
    )


def pixel_probability_function(model):
    """The function turning the model's output into per-pixel
    probabilities: identity when the model ends in its softmax or sigmoid,
    else a softmax over ``K >= 2`` classes or a sigmoid for ``K = 1``."""
    state = model_state(model)
    graph = state.graph
    tensor, _ = pixel_score_head(state)
    if tensor is not graph.outputs[0]:
        return _identity
    return tf.sigmoid if graph.outputs[0].shape[-1] == 1 else tf.nn.softmax


def predicted_labels(outputs):
    """Predicted classes of a model's output tensor, per image or pixel.

    The arg-max over the last axis; a single per-pixel output ``(B, H, W,
    1)`` is a sigmoid probability, so the label is 1 where it is above
    0.5. Returns int64 ``(B,)`` or ``(B, H, W)``.
    """
    if len(outputs.shape) == 4 and outputs.shape[-1] == 1:
        return tf.cast(outputs[..., 0] > 0.5, tf.int64)
    return tf.argmax(outputs, axis=-1)
