"""Attention layers whose weights can be read back and saved.

Every layer here is registered with Keras under the package name
``explain_attn``, so a model that uses them saves to and loads from a
``.keras`` file once ``explain_attn`` has been imported.

Each layer implements the attention protocol that
`explain_attn.attention.kinds` reads, so nothing outside this module needs
to know the classes: ``attention_kind`` (``"spatial"`` or ``"channel"``)
and ``attention_parts(inputs) -> (features, weights)`` with
``layer(inputs) == features * weights``; CBAM and `ChannelAttention` also
have ``channel_attention_map(inputs)``.
"""

import keras
from keras import ops

from explain_attn.options import check_positive_int

__all__ = [
    "AggregatedAttention",
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
]


def _validate_positive_int(name, value, *, odd=False):
    check_positive_int(name, value)
    if odd and value % 2 == 0:
        raise ValueError(
            f"`{name}` must be odd so that the map stays centred on each "
            f"pixel. Received: {name}={value!r}"
        )


def _validate_rank4(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(
            f"`{type(layer).__name__}` expects inputs of rank 4 "
            f"(batch, height, width, channels). Received: "
            f"input_shape={tuple(input_shape)}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"`{type(layer).__name__}` needs a known number of channels. "
            f"Received: input_shape={tuple(input_shape)}"
        )


def _build_if_needed(layer, inputs):
    # `attention_map` may be the first call; building the layer itself here
    # (not only its children) keeps a later `layer(inputs)` working.
    if not layer.built:
        layer.build(tuple(inputs.shape))


class _GatingLayer(keras.layers.Layer):
    """What our attention layers share: ``output = features * weights``.

    A subclass sets ``attention_kind`` and defines ``attention_map``; the
    features are the inputs unless it overrides ``attention_parts``.
    """

    attention_kind = "spatial"

    def attention_parts(self, inputs):
        """``(features, weights)``: the layer's output is their product."""
        return inputs, self.attention_map(inputs)

    def call(self, inputs):
        features, weights = self.attention_parts(inputs)
        return features * weights

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="explain_attn")
class SpatialAttention(_GatingLayer):
    """Spatial attention: a sigmoid map over positions, multiplied in.

    The layer of the aggregated-attention tutorial, which is the spatial
    branch of CBAM (Woo et al., 2018). Channel-wise mean and maximum of the
    input are concatenated in that order, a single-filter convolution with
    bias and ``"same"`` padding turns them into one channel, and a sigmoid
    turns that into weights in (0, 1) that scale every channel of the input.

    With ``x`` the input, ``conv`` the ``kernel_size`` x ``kernel_size``
    convolution and ``sigma`` the sigmoid:

    ``m = sigma(conv([mean_c(x), max_c(x)]))`` and ``y = x * m``.

    Args:
        kernel_size: Positive odd integer, the height and width of the
            convolution that produces the map. Defaults to 7.
        **kwargs: Base layer keyword arguments, such as ``name``.

    Call arguments:
        inputs: A 4-D tensor ``(batch, height, width, channels)``.

    Input shape:
        4-D tensor with shape ``(batch, height, width, channels)``.

    Output shape:
        Same as the input. ``attention_map(inputs)`` returns the weights,
        shape ``(batch, height, width, 1)``.

    Example:

    >>> layer = SpatialAttention(kernel_size=7, name="attention")
    >>> x = np.random.rand(2, 16, 16, 8).astype("float32")
    >>> layer(x).shape
    (2, 16, 16, 8)
    >>> layer.attention_map(x).shape
    (2, 16, 16, 1)
    """

    def __init__(self, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        _validate_positive_int("kernel_size", kernel_size, odd=True)
        self.kernel_size = kernel_size
        self.conv = keras.layers.Conv2D(
            1,
            kernel_size,
            padding="same",
            activation="sigmoid",
            name="conv",
        )

    def build(self, input_shape):
        _validate_rank4(self, input_shape)
        self.conv.build((*input_shape[:-1], 2))

    def attention_map(self, inputs):
        """Returns the attention weights, ``(batch, H, W, 1)`` in (0, 1)."""
        _build_if_needed(self, inputs)
        average = ops.mean(inputs, axis=-1, keepdims=True)
        maximum = ops.max(inputs, axis=-1, keepdims=True)
        return self.conv(ops.concatenate([average, maximum], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package="explain_attn")
class AggregatedAttention(SpatialAttention):
    """The tutorial's name for `SpatialAttention`; identical behaviour.

    Kept so that code written against the tutorial runs unchanged, and so
    that its models save and load (the tutorial's own class cannot be
    deserialized).

    Args:
        kernel_size: Positive odd integer. Defaults to 7.
        **kwargs: Base layer keyword arguments, such as ``name``.
    """


@keras.saving.register_keras_serializable(package="explain_attn")
class ChannelAttention(_GatingLayer):
    """CBAM channel attention: a sigmoid weight per channel, multiplied in.

    A two-layer perceptron, shared between the globally average-pooled and
    max-pooled channel vectors, scores each channel; the two scores are
    summed and passed through a sigmoid (Woo et al., 2018, eq. 2):

    ``w = sigma(MLP(avgpool(x)) + MLP(maxpool(x)))`` and ``y = x * w``,

    where ``MLP(v) = W1 relu(W0 v + b0) + b1``, ``W0`` maps ``C`` channels
    to ``max(1, C // reduction_ratio)`` and ``W1`` maps back to ``C``. The
    biases follow the authors' reference code. The weights are created in
    ``build`` because their sizes depend on the number of channels.

    Args:
        reduction_ratio: Positive integer, how much the hidden layer of the
            perceptron shrinks the channels. Defaults to 8.
        **kwargs: Base layer keyword arguments, such as ``name``.

    Call arguments:
        inputs: A 4-D tensor ``(batch, height, width, channels)``.

    Input shape:
        4-D tensor with shape ``(batch, height, width, channels)``.

    Output shape:
        Same as the input. ``attention_map(inputs)`` returns the channel
        weights, shape ``(batch, 1, 1, channels)``.

    Example:

    >>> layer = ChannelAttention(reduction_ratio=4)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> layer.attention_map(x).shape
    (2, 1, 1, 16)
    """

    def __init__(self, reduction_ratio=8, **kwargs):
        super().__init__(**kwargs)
        _validate_positive_int("reduction_ratio", reduction_ratio)
        self.reduction_ratio = reduction_ratio

    def build(self, input_shape):
        _validate_rank4(self, input_shape)
        channels = input_shape[-1]
        hidden = max(1, channels // self.reduction_ratio)
        self.hidden_kernel = self.add_weight(
            name="hidden_kernel",
            shape=(channels, hidden),
            initializer="glorot_uniform",
        )
        self.hidden_bias = self.add_weight(
            name="hidden_bias", shape=(hidden,), initializer="zeros"
        )
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(hidden, channels),
            initializer="glorot_uniform",
        )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(channels,), initializer="zeros"
        )

    def _perceptron(self, vectors):
        hidden = ops.relu(
            ops.matmul(vectors, self.hidden_kernel) + self.hidden_bias
        )
        return ops.matmul(hidden, self.output_kernel) + self.output_bias

    attention_kind = "channel"

    def attention_map(self, inputs):
        """Returns the channel weights, ``(batch, 1, 1, C)`` in (0, 1)."""
        _build_if_needed(self, inputs)
        average = ops.mean(inputs, axis=(1, 2))
        maximum = ops.max(inputs, axis=(1, 2))
        scores = self._perceptron(average) + self._perceptron(maximum)
        return ops.sigmoid(scores)[:, None, None, :]

    def channel_attention_map(self, inputs):
        """The channel weights (the same as `attention_map`)."""
        return self.attention_map(inputs)

    def get_config(self):
        config = super().get_config()
        config.update({"reduction_ratio": self.reduction_ratio})
        return config


@keras.saving.register_keras_serializable(package="explain_attn")
class CBAM(_GatingLayer):
    """Convolutional Block Attention Module: channel, then spatial attention.

    Woo et al., 2018: ``x' = x * Mc(x)`` with `ChannelAttention` ``Mc``,
    then ``y = x' * Ms(x')`` with `SpatialAttention` ``Ms``.

    Args:
        reduction_ratio: Positive integer for the channel branch. Defaults
            to 8.
        kernel_size: Positive odd integer for the spatial branch. Defaults
            to 7.
        **kwargs: Base layer keyword arguments, such as ``name``.

    Call arguments:
        inputs: A 4-D tensor ``(batch, height, width, channels)``.

    Input shape:
        4-D tensor with shape ``(batch, height, width, channels)``.

    Output shape:
        Same as the input. ``attention_map(inputs)`` returns the spatial
        weights ``(batch, H, W, 1)``; ``channel_attention_map(inputs)`` the
        channel weights ``(batch, 1, 1, C)``.

    Example:

    >>> layer = CBAM(reduction_ratio=4, kernel_size=3)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> layer.attention_map(x).shape
    (2, 8, 8, 1)
    """

    def __init__(self, reduction_ratio=8, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = reduction_ratio
        self.kernel_size = kernel_size
        self.channel_attention = ChannelAttention(
            reduction_ratio, name="channel_attention"
        )
        self.spatial_attention = SpatialAttention(
            kernel_size, name="spatial_attention"
        )

    def build(self, input_shape):
        _validate_rank4(self, input_shape)
        self.channel_attention.build(input_shape)
        self.spatial_attention.build(input_shape)

    def channel_attention_map(self, inputs):
        """Returns the channel weights, ``(batch, 1, 1, C)`` in (0, 1)."""
        _build_if_needed(self, inputs)
        return self.channel_attention.attention_map(inputs)

    def attention_map(self, inputs):
        """Returns the spatial weights, ``(batch, H, W, 1)`` in (0, 1)."""
        return self.attention_parts(inputs)[1]

    def attention_parts(self, inputs):
        """``(refined, map)``: the features after the channel attention and
        the spatial weights computed from them; the output is their
        product."""
        _build_if_needed(self, inputs)
        refined = self.channel_attention(inputs)
        return refined, self.spatial_attention.attention_map(refined)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction_ratio": self.reduction_ratio,
                "kernel_size": self.kernel_size,
            }
        )
        return config
