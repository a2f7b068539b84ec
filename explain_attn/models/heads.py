"""What a classifier's output is: scores before the softmax, probabilities.

Grad-CAM and its relatives differentiate the score *before* the softmax;
the faithfulness checks need probabilities. Both are read from the model's
own last layer, with its own live weights; the model is never modified.
"""

import keras
import tensorflow as tf

from explain_attn.graph import model_state
from explain_attn.models.task import pixel_probability_function

__all__ = ["probability_function", "score_head", "single_input_graph"]


def _identity(values):
    return values


def score_head(model):
    """Finds the tensor and function that give the pre-softmax scores.

    When the model ends in a softmax (a ``Dense(..., activation="softmax")``,
    a ``Softmax`` or an ``Activation("softmax")`` layer), the scores are the
    softmax's input, computed with the model's own weights. Otherwise the
    model's output is the score as given.

    Returns:
        ``(tensor, function)``: the flat-graph tensor to fetch and a function
        turning it into scores.

    Raises:
        ValueError: If the model ends in a layer other than ``Dense`` with a
            softmax activation (its input is not the logits' input), or
            gives one prediction per pixel (a segmentation model: see
            `explain_attn.models.task.pixel_score_head`).
    """
    state = model_state(model)
    model = state.model
    graph = state.graph
    output = graph.outputs[0]
    if len(output.shape) == 4:
        raise ValueError(
            f"Model {model.name!r} gives one prediction per pixel (output "
            f"{tuple(output.shape)}): a segmentation model, whose class "
            "score is a sum over a region. Use --method seg_grad_cam "
            "(Seg-Grad-CAM) or --task segmentation."
        )
    tap = next((t for t in graph.taps.values() if t.output is output), None)
    if tap is None:
        return output, _identity
    layer = tap.layer
    activation = layer.get_config().get("activation")
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and activation == "softmax"
    ):
        return tap.input, _identity
    if activation == "softmax":
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(
                f"Model {model.name!r} ends in a {type(layer).__name__} with "
                "a softmax activation; Grad-CAM needs the pre-softmax "
                "scores. End the model with Dense(activation=None) followed "
                "by a Softmax layer."
            )

        def logits(features):
            values = tf.matmul(features, layer.kernel)
            return values + layer.bias if layer.use_bias else values

        return tap.input, logits
    return output, _identity


def probability_function(model):
    """The function turning the model's output into probabilities.

    Models ending in a softmax already give probabilities: identity. Any
    other output is taken as logits: softmax. A segmentation model's
    (per pixel) is `explain_attn.models.task.pixel_probability_function`.
    """
    state = model_state(model)
    graph = state.graph
    if len(graph.outputs[0].shape) == 4:
        return pixel_probability_function(state)
    tensor, _ = score_head(state)
    return tf.nn.softmax if tensor is graph.outputs[0] else _identity


def single_input_graph(model):
    """The model's flat graph, checked to have one input and one output.

    Raises:
        ValueError: If the model has several inputs or outputs.
    """
    state = model_state(model)
    model = state.model
    graph = state.graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(graph.inputs)} inputs and "
            f"{len(graph.outputs)} outputs; the faithfulness checks need "
            "one image input and one class-score output."
        )
    return graph
