"""Gradient-weighted class activation maps: Grad-CAM and Grad-CAM++.

One base class, `BaseCAM`, owns the plumbing: the flat graph (nested models
included), the pre-softmax score, one compiled `tf.function` with a
`tf.GradientTape` per model and layer, batching, ReLU, per-image min-max
normalisation and resizing. Each method overrides one hook,
`channel_weights`, the way pytorch-grad-cam structures its methods.
"""

import abc
import weakref

import keras
import numpy as np
import tensorflow as tf

from explain_attn._graph import flat_graph
from explain_attn.maps import (
    _batches,
    _check_images,
    _concatenate,
    _resize_size,
    _single,
)

__all__ = [
    "BaseCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "default_cam_layer",
    "grad_cam",
    "grad_cam_plus_plus",
]


def default_cam_layer(model):
    """Returns the path of the last 4-D layer (the one before pooling).

    Raises:
        ValueError: If the model has no layer with a 4-D output.
    """
    spatial = [
        tap.path
        for tap in flat_graph(model).taps.values()
        if tap.is_spatial
        and not isinstance(tap.layer, keras.layers.InputLayer)
        and not _is_model(tap.layer)
    ]
    if not spatial:
        raise ValueError(
            f"Model {model.name!r} has no layer with a 4-D output (batch, H, "
            "W, C), so Grad-CAM has no feature map to weigh. Use a "
            "convolutional model."
        )
    return spatial[-1]


def _is_model(layer):
    return isinstance(layer, keras.Model)


def _score_head(model, graph):
    """Finds the tensor and function that give the pre-softmax scores.

    Returns ``(tensor, function)``: the flat-graph tensor to fetch and a
    function turning it into logits, using the model's own live weights.
    """
    output = graph.outputs[0]
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


def _identity(values):
    return values


class BaseCAM(abc.ABC):
    """Plumbing shared by the class-activation-map methods.

    The map of image ``i`` for class ``c`` at layer activations ``A`` is
    ``normalize(relu(sum_k w_k A_k))`` with channel weights ``w`` from
    `channel_weights`, computed from the gradient of the pre-softmax score
    ``y_c`` with respect to ``A``. When the model ends in a softmax (a
    ``Dense(..., activation="softmax")``, a ``Softmax`` or an
    ``Activation("softmax")`` layer) the score is the input of the softmax,
    computed with the model's own weights; the model is not modified.
    Otherwise the model's output is the score as given.

    ``normalize`` maps each image's map to [0, 1] by min-max; a map whose
    maximum equals its minimum (e.g. all zero after the ReLU) becomes all
    zeros, never NaN.

    Args:
        model: A functional or built Sequential `keras.Model`.
        layer: Name, path or pattern of one layer with a 4-D output;
            ``None`` picks the last 4-D layer (before global pooling).
    """

    def __init__(self, model, layer=None):
        graph = flat_graph(model)
        if layer is None:
            self.path = default_cam_layer(model)
        else:
            (self.path,) = _single(model, layer)
        tap = graph.taps[self.path]
        if not tap.is_spatial:
            raise ValueError(
                f"Layer {self.path!r} has output shape "
                f"{tuple(tap.output.shape)}; Grad-CAM needs a 4-D output "
                "(batch, H, W, C). Choose a convolutional layer."
            )
        features, self._logits = _score_head(model, graph)
        self._model = keras.Model(graph.model_inputs, [tap.output, features])
        self.num_classes = int(graph.outputs[0].shape[-1])
        input_shape = tuple(graph.inputs[0].shape)
        self._input_shape = input_shape[1:]
        self._function = tf.function(
            self._maps,
            input_signature=[
                tf.TensorSpec(input_shape, tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
        )

    @abc.abstractmethod
    def channel_weights(self, activations, gradients):
        """The hook: ``(B, h, w, C)`` activations, gradients -> ``(B, C)``."""

    def _maps(self, images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            activations, features = self._model(images, training=False)
            logits = self._logits(features)
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            classes = tf.where(classes < 0, predicted, classes)
            scores = tf.gather(logits, classes, axis=1, batch_dims=1)
        gradients = tape.gradient(scores, activations)
        weights = self.channel_weights(activations, gradients)
        cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", activations, weights))
        low = tf.reduce_min(cam, axis=(1, 2), keepdims=True)
        high = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        span = high - low
        cam = tf.where(span > 0, (cam - low) / tf.where(span > 0, span, 1), 0)
        return cam

    def __call__(
        self, images, *, class_index=None, batch_size=64, resize_to=None
    ):
        """Computes the maps; see `grad_cam` for the arguments."""
        images = _check_images(images, self._input_shape)
        classes = self._classes(class_index, len(images))
        target = _resize_size(self._input_shape, resize_to)
        chunks = []
        start = 0
        for batch in _batches(images, batch_size):
            stop = start + len(batch)
            cam = self._function(batch, tf.constant(classes[start:stop]))
            if target is not None:
                cam = tf.image.resize(cam[..., None], target)[..., 0]
            chunks.append(cam.numpy())
            start = stop
        return _concatenate(chunks)

    def _classes(self, class_index, count):
        if class_index is None:
            return np.full(count, -1, np.int32)
        values = np.asarray(class_index)
        if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
            raise TypeError(
                "class_index must be None, an int or an array of ints. "
                f"Received: class_index of dtype {values.dtype}"
            )
        if values.ndim == 0:
            values = np.full(count, int(values))
        if values.shape != (count,):
            raise ValueError(
                f"class_index must have one entry per image ({count}). "
                f"Received: shape {values.shape}"
            )
        if values.min() < 0 or values.max() >= self.num_classes:
            raise ValueError(
                f"class_index must lie in [0, {self.num_classes}). Received: "
                f"values from {values.min()} to {values.max()}"
            )
        return values.astype(np.int32)


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., 2017).

    Channel weights are the spatial mean of the gradients:
    ``w_k = mean_ij dy_c / dA_k[i, j]``.
    """

    def channel_weights(self, activations, gradients):
        return tf.reduce_mean(gradients, axis=(1, 2))


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ (Chattopadhay et al., 2018).

    With ``g = dy_c / dA_k[i, j]`` (pre-softmax score, the closed form of
    the paper's eq. 19 under an exponential output),
    ``alpha = g^2 / (2 g^2 + sum_ab A_k[a, b] g^3)`` (0 where the
    denominator is 0) and ``w_k = sum_ij alpha relu(g)``.
    """

    def channel_weights(self, activations, gradients):
        squared = tf.square(gradients)
        cubed = squared * gradients
        total = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 * squared + total * cubed
        safe = tf.where(denominator != 0, denominator, 1.0)
        alpha = tf.where(denominator != 0, squared / safe, 0.0)
        return tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))


_CAMS = weakref.WeakKeyDictionary()


def _cam(method, model, layer):
    cache = _CAMS.setdefault(model, {})
    key = (method, layer)
    if key not in cache:
        cache[key] = method(model, layer)
    return cache[key]


def grad_cam(
    model,
    images,
    *,
    layer=None,
    class_index=None,
    batch_size=64,
    resize_to=None,
):
    """Grad-CAM maps of ``model`` for ``images``, batched and compiled.

    Args:
        model: A functional or built Sequential `keras.Model`; nested models
            work. It is not modified.
        images: ``(N, H, W, C)`` array matching the model's input.
        layer: Name, path or pattern of the layer to explain; ``None`` picks
            the last 4-D layer (the one before global pooling).
        class_index: ``None`` for each image's predicted class, an int for
            one class, or an ``(N,)`` int array (e.g. the true labels).
        batch_size: Images per forward and backward pass.
        resize_to: ``None``, ``"input"`` or ``(height, width)``; bilinear.

    Returns:
        ``(N, h, w)`` float32 maps in [0, 1].
    """
    return _cam(GradCAM, model, layer)(
        images,
        class_index=class_index,
        batch_size=batch_size,
        resize_to=resize_to,
    )


def grad_cam_plus_plus(
    model,
    images,
    *,
    layer=None,
    class_index=None,
    batch_size=64,
    resize_to=None,
):
    """Grad-CAM++ maps; same arguments and result as `grad_cam`."""
    return _cam(GradCAMPlusPlus, model, layer)(
        images,
        class_index=class_index,
        batch_size=batch_size,
        resize_to=resize_to,
    )
