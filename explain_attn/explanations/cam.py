"""Class activation maps from gradients: Grad-CAM and its relatives.

An abstract base class, `BaseCAM`, owns the plumbing: the flat graph (nested
models included), the pre-softmax score (`models.heads.score_head`),
one compiled `tf.function` with a `tf.GradientTape` per model and layer,
batching, ReLU, per-image min-max normalisation and resizing. A method
overrides one of two hooks, the way pytorch-grad-cam structures its
methods:

- `BaseCAM.combine`: how gradients and activations make the map, pixel by
  pixel (LayerCAM, HiResCAM);
- `ChannelWeightedCAM.channel_weights`: one weight per channel (Grad-CAM,
  Grad-CAM++), with which `ChannelWeightedCAM.combine` sums the
  activations.
"""

import abc

import keras
import numpy as np
import tensorflow as tf

from explain_attn.data.adapter import as_source
from explain_attn.devices import graph_function, run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import (
    ClassBatches,
    check_class_index,
    model_batches,
    resize_target,
)
from explain_attn.explanations.methods import register_cam
from explain_attn.graph import model_state
from explain_attn.models.heads import score_head
from explain_attn.models.lookup import default_cam_layer, single_layer

__all__ = [
    "BaseCAM",
    "ChannelWeightedCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "layer_cam",
]


class BaseCAM(abc.ABC):
    """Plumbing shared by the class-activation-map methods.

    The map of image ``i`` for class ``c`` at layer activations ``A`` is
    ``normalize(relu(combine(A, g)))`` with ``g = dy_c / dA`` the gradient
    of the pre-softmax score ``y_c``; subclasses define `combine`.
    When the model ends in a softmax (a ``Dense(..., activation="softmax")``,
    a ``Softmax`` or an ``Activation("softmax")`` layer) the score is the
    input of the softmax, computed with the model's own weights; the model
    is not modified. Otherwise the model's output is the score as given.

    ``normalize`` maps each image's map to [0, 1] by min-max; a map whose
    maximum equals its minimum (e.g. all zero after the ReLU) becomes all
    zeros, never NaN.

    Args:
        model: A functional or built Sequential `keras.Model`, or its
            `explain_attn.graph.ModelState`.
        layer: Name, path or pattern of one layer with a 4-D output;
            ``None`` picks the last 4-D layer (before global pooling).
    """

    name = ""
    """The method's name in `explain_attn.explanations.methods`."""

    head = staticmethod(score_head)
    """Hook: ``model -> (tensor, function)`` giving the scores (given the
    model's `explain_attn.graph.ModelState`)."""

    default_layer = staticmethod(default_cam_layer)
    """Hook: ``model -> path`` of the layer explained by default (given the
    model's `explain_attn.graph.ModelState`)."""

    title = ""
    """How reports name the method."""

    def __init__(self, model, layer=None):
        state = self._state = model_state(model)
        graph = state.graph
        if layer is None:
            self.path = self.default_layer(state)
        else:
            self.path = single_layer(state, layer)
        tap = graph.taps[self.path]
        if not tap.is_spatial:
            raise ValueError(
                f"Layer {self.path!r} has output shape "
                f"{tuple(tap.output.shape)}; {self.title or 'Grad-CAM'} "
                "needs a 4-D output (batch, H, W, C). Choose a convolutional "
                "layer."
            )
        height, width = tap.output.shape[1:3]
        if height is not None and width is not None and height * width < 2:
            raise ValueError(
                f"Layer {self.path!r} has output shape "
                f"{tuple(tap.output.shape)}: at 1×1, "
                f"{self.title or 'Grad-CAM'} has no map (it would be all "
                "zeros). Choose a layer whose output is at least 2×2 (see "
                "`explain-attn layers MODEL`)."
            )
        features, self._logits = self.head(state)
        # When the layer is the scores' input, one output serves as both.
        self._shared = features is tap.output
        outputs = [tap.output] + [features] * (not self._shared)
        self._model = keras.Model(graph.model_inputs, outputs)
        self.num_classes = int(graph.outputs[0].shape[-1])
        shape = tuple(graph.inputs[0].shape)
        self._input_shape = shape[1:]
        self._function = graph_function(
            self._maps,
            input_signature=[
                tf.TensorSpec(shape, tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
        )

    @abc.abstractmethod
    def combine(self, activations, gradients):
        """Hook: ``(B, h, w, C)`` activations, gradients -> ``(B, h, w)``.

        The map before ReLU and normalisation.
        """

    def scores(self, logits, classes):
        """Hook: ``(B, K)`` logits, ``(B,)`` classes (-1: predicted) ->
        ``(B,)`` scores to explain."""
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        classes = tf.where(classes < 0, predicted, classes)
        return tf.gather(logits, classes, axis=1, batch_dims=1)

    def _maps(self, images, classes):
        return self._cam(images, lambda logits: self.scores(logits, classes))

    def _cam(self, images, score):
        """The normalised maps of the score ``score(logits) -> (B,)``."""
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = keras.tree.flatten(self._model(images, training=False))
            activations, features = outputs[0], outputs[-1]
            scores = score(self._logits(features))
        gradients = tape.gradient(scores, activations)
        cam = tf.nn.relu(self.combine(activations, gradients))
        low = tf.reduce_min(cam, axis=(1, 2), keepdims=True)
        high = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        span = high - low
        return tf.where(span > 0, (cam - low) / tf.where(span > 0, span, 1), 0)

    def batch(self, images, classes, resize_to=None):
        """Maps of one batch: ``(B, h, w)`` float32 NumPy.

        Args:
            images: ``(B, H, W, C)`` float32 tensor or array.
            classes: ``(B,)`` int32 classes; -1 for the predicted class.
            resize_to: ``None`` or ``(height, width)``; bilinear.
        """
        cam = self._function(
            tf.constant(images), tf.constant(classes, tf.int32)
        )
        if resize_to is not None:
            cam = tf.image.resize(cam[..., None], resize_to)[..., 0]
        return cam.numpy()

    def __call__(
        self,
        images,
        *,
        class_index=None,
        batch_size=64,
        resize_to=None,
        input_scale=None,
        preprocess=None,
        strategy=None,
    ):
        """Computes the maps; see `grad_cam` for the arguments."""
        target = resize_target(self._input_shape, resize_to)
        images = as_source(images, image_shape=self._input_shape, name="images")
        classes = ClassBatches(class_index, images, self.num_classes)
        chunks = [
            run_replicated(
                strategy,
                lambda part, wanted: self.batch(part, wanted, target),
                batch,
                classes.take(len(batch)),
            )
            for batch in model_batches(
                self._state,
                images,
                batch_size,
                input_scale=input_scale,
                preprocess=preprocess,
            )
        ]
        classes.finish()
        return np.concatenate(chunks)

    def classes(self, class_index, count):
        """``class_index`` checked against the model's classes; see
        `explain_attn.explanations.inputs.check_class_index`."""
        return check_class_index(class_index, count, self.num_classes)


class ChannelWeightedCAM(BaseCAM):
    """A CAM that weighs each channel of the activations by one number.

    ``combine(A, g) = sum_k w_k A_k`` with ``w`` from `channel_weights`.
    """

    @abc.abstractmethod
    def channel_weights(self, activations, gradients):
        """Hook: ``(B, h, w, C)`` activations, gradients -> ``(B, C)``."""

    def combine(self, activations, gradients):
        weights = self.channel_weights(activations, gradients)
        return tf.einsum("bhwc,bc->bhw", activations, weights)


@register_cam
class GradCAM(ChannelWeightedCAM):
    """Grad-CAM (Selvaraju et al., 2017).

    Channel weights are the spatial mean of the gradients:
    ``w_k = mean_ij dy_c / dA_k[i, j]``.
    """

    name = "grad_cam"
    title = "Grad-CAM"

    def channel_weights(self, activations, gradients):
        return tf.reduce_mean(gradients, axis=(1, 2))


@register_cam
class GradCAMPlusPlus(ChannelWeightedCAM):
    """Grad-CAM++ (Chattopadhay et al., 2018).

    With ``g = dy_c / dA_k[i, j]`` (pre-softmax score, the closed form of
    the paper's eq. 19 under an exponential output),
    ``alpha = g^2 / (2 g^2 + sum_ab A_k[a, b] g^3)`` (0 where the
    denominator is 0) and ``w_k = sum_ij alpha relu(g)``.
    """

    name = "grad_cam_plus_plus"
    title = "Grad-CAM++"

    def channel_weights(self, activations, gradients):
        squared = tf.square(gradients)
        cubed = squared * gradients
        total = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 * squared + total * cubed
        safe = tf.where(denominator != 0, denominator, 1.0)
        alpha = tf.where(denominator != 0, squared / safe, 0.0)
        return tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))


@register_cam
class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al., 2021).

    Each activation is weighted by its own positive gradient:
    ``relu(sum_k relu(dy_c / dA_k) * A_k)``, pixel by pixel.
    """

    name = "layer_cam"
    title = "LayerCAM"

    def combine(self, activations, gradients):
        return tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1)


@register_cam
class HiResCAM(BaseCAM):
    """HiResCAM (Draelos & Carin, 2020).

    The element-wise product of gradients and activations, summed over
    channels: ``relu(sum_k dy_c / dA_k * A_k)``. Unlike Grad-CAM it does not
    average the gradients over space, so the map shows the positions that
    raise the score.
    """

    name = "hires_cam"
    title = "HiResCAM"

    def combine(self, activations, gradients):
        return tf.reduce_sum(gradients * activations, axis=-1)


def cached_cam(method, model, layer=None):
    """The `BaseCAM` subclass ``method`` for ``model`` and ``layer``, built
    once per `explain_attn.graph.ModelState` (a `keras.Model`: built for
    this call)."""
    state = model_state(model)
    return compiled(state, (method, layer), lambda: method(state, layer))


def _public_function(method, doc):
    """The public function of a `BaseCAM` subclass, with `grad_cam`'s
    signature."""

    def function(
        model,
        images,
        *,
        layer=None,
        class_index=None,
        batch_size=64,
        resize_to=None,
        input_scale=None,
        preprocess=None,
        strategy=None,
    ):
        return cached_cam(method, model, layer)(
            images,
            class_index=class_index,
            batch_size=batch_size,
            resize_to=resize_to,
            input_scale=input_scale,
            preprocess=preprocess,
            strategy=strategy,
        )

    function.__name__ = function.__qualname__ = method.name
    function.__doc__ = doc
    return function


grad_cam = _public_function(
    GradCAM,
    """Grad-CAM maps of ``model`` for ``images``, batched and compiled.

    Args:
        model: A functional or built Sequential `keras.Model`; nested models
            work. It is not modified. Or its `explain_attn.graph.ModelState`
            (`explain_attn.graph.model_state`): given a model, each call
            builds the model's graph and compiles its function again
            (0.5 s to 2.3 s, see `ModelState`); pass a state, or use an
            `explain_attn.explanations.explanation.Explainer`, to build
            them once.
        images: ``(N, H, W, C)`` array matching the model's input, or a
            `tf.data.Dataset`, an iterable of batches, a list of image files
            or a data source (`explain_attn.explanations.inputs`).
        layer: Name, path or pattern of the layer to explain; ``None`` picks
            the last 4-D layer (the one before global pooling).
        class_index: ``None`` for each image's predicted class, an int for
            one class, or an ``(N,)`` int array (e.g. the true labels).
        batch_size: Images per forward and backward pass.
        resize_to: ``None``, ``"input"`` or ``(height, width)``; bilinear.
        input_scale: ``None`` or the scale the model takes (see
            `explain_attn.explanations.inputs.model_batches`).
        preprocess: ``None`` or a function applied to every batch.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each batch (`explain_attn.devices.make_strategy`).

    Returns:
        ``(N, h, w)`` float32 maps in [0, 1].
    """,
)
grad_cam_plus_plus = _public_function(
    GradCAMPlusPlus,
    "Grad-CAM++ maps; same arguments and result as `grad_cam`.",
)
layer_cam = _public_function(
    LayerCAM, "LayerCAM maps; same arguments and result as `grad_cam`."
)
hires_cam = _public_function(
    HiResCAM, "HiResCAM maps; same arguments and result as `grad_cam`."
)
