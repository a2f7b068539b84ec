"""The tutorial's models, their fair control, and a small demo family.

Every layer a user may want to look up has a fixed, documented name, so that
attention maps are fetched by name and never by position:

- ``"baseline"``: ``conv1``, ``pool1``, ``conv2``, ``gap``, ``predictions``.
- ``"attention"``: ``conv1``, ``attention``, ``pool1``, ``conv2``, ``gap``,
  ``predictions``.
- ``"attention_ablation"``: ``"attention"`` without its ``attention`` layer.
- ``"residual"``: ``conv_stem``, ``res_conv``, ``res_attention``, ``res_add``,
  ``gap``, ``predictions``.
- ``"small_convnet"`` / ``"small_attention"``: three blocks ``block1`` ..
  ``block3`` (``*_conv``, ``*_bn``, ``*_relu``), pools ``pool1``, ``pool2``,
  attention layers ``block2_attention`` and ``block3_attention`` (only in
  ``"small_attention"``), ``gap``, ``predictions``.
- ``"unet"`` / ``"attention_unet"``: segmentation models whose output is one
  softmax per pixel (`explain_attn.models.unet`; ``"unet"`` is the
  capacity-matched control, its gates replaced by identity).
"""

import keras
from keras import layers

from explain_attn.attention.layers import SpatialAttention
from explain_attn.models.unet import build_unet

__all__ = ["ARCHITECTURES", "SEGMENTATION_ARCHITECTURES", "build_model"]

ARCHITECTURES = {
    "baseline": (
        "Tutorial baseline: conv 32, max-pool, conv 64, global average "
        "pool, dense softmax (20,042 parameters at 32x32x3, 10 classes)."
    ),
    "attention": (
        "Tutorial method 1: conv 64, spatial attention 'attention', "
        "max-pool, conv 128, global average pool, dense softmax (77,037)."
    ),
    "attention_ablation": (
        "The 'attention' network with its attention layer removed: the "
        "capacity-matched control for it (76,938)."
    ),
    "residual": (
        "Tutorial method 2: conv 64, residual block (conv 64, spatial "
        "attention 'res_attention', add), global average pool, dense "
        "softmax (39,469)."
    ),
    "small_convnet": (
        "Demo baseline: three conv-BN-ReLU blocks 8-48-96 with max-pools "
        "after the first two, global average pool, dense softmax; the "
        "'small_attention' network with its attention layers removed "
        "(46,140 parameters at 32x32x3, 4 classes)."
    ),
    "small_attention": (
        "Demo attention network: 'small_convnet' with spatial attention "
        "'block2_attention' and 'block3_attention' after blocks 2 and 3 "
        "(46,338 parameters at 32x32x3, 4 classes)."
    ),
}

SEGMENTATION_ARCHITECTURES = {
    "unet": (
        "Segmentation: a two-level U-Net 8-16-32 with a softmax per pixel; "
        "the 'attention_unet' with its gates replaced by identity, its "
        "capacity-matched control (14,741 parameters at 32x32x3, 5 "
        "classes)."
    ),
    "attention_unet": (
        "Segmentation: 'unet' with additive attention gates 'gate1' and "
        "'gate2' on its skip connections (Oktay et al., 2018; 15,739)."
    ),
}
"""The segmentation architectures (one prediction per pixel), which
`build_model` builds too; `ARCHITECTURES` lists the classifiers."""


def _baseline(inputs, num_classes):
    x = layers.Conv2D(32, 3, activation="relu", padding="same", name="conv1")(
        inputs
    )
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same", name="conv2")(x)
    return _head(x, num_classes)


def _attention(inputs, num_classes, *, with_attention=True):
    x = layers.Conv2D(64, 3, activation="relu", padding="same", name="conv1")(
        inputs
    )
    if with_attention:
        x = SpatialAttention(7, name="attention")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(128, 3, activation="relu", padding="same", name="conv2")(
        x
    )
    return _head(x, num_classes)


def _residual(inputs, num_classes):
    stem = layers.Conv2D(
        64, 3, activation="relu", padding="same", name="conv_stem"
    )(inputs)
    x = layers.Conv2D(
        64, 3, activation="relu", padding="same", name="res_conv"
    )(stem)
    x = SpatialAttention(7, name="res_attention")(x)
    x = layers.Add(name="res_add")([stem, x])
    return _head(x, num_classes)


def _small(inputs, num_classes, *, with_attention):
    # A narrow first block: at full resolution it costs the most time on a
    # CPU, while width after pooling buys the accuracy (issue 3's tuning).
    x = inputs
    for index, filters in enumerate((8, 48, 96), start=1):
        name = f"block{index}"
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = layers.ReLU(name=f"{name}_relu")(x)
        if with_attention and index > 1:
            x = SpatialAttention(7, name=f"{name}_attention")(x)
        if index < 3:
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    return _head(x, num_classes)


def _head(x, num_classes):
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(
        x
    )


_BUILDERS = {
    "baseline": _baseline,
    "attention": _attention,
    "attention_ablation": lambda i, n: _attention(i, n, with_attention=False),
    "residual": _residual,
    "small_convnet": lambda i, n: _small(i, n, with_attention=False),
    "small_attention": lambda i, n: _small(i, n, with_attention=True),
    "unet": lambda i, n: build_unet(i, n, with_attention=False),
    "attention_unet": lambda i, n: build_unet(i, n, with_attention=True),
}


def build_model(architecture, *, input_shape=(32, 32, 3), num_classes=10):
    """Builds one of the registered architectures, uncompiled.

    Args:
        architecture: A key of `ARCHITECTURES` or of
            `SEGMENTATION_ARCHITECTURES`.
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: Number of output classes, at least 2.

    Returns:
        A functional `keras.Model` named after the architecture, with the
        layer names listed in this module's docstring.

    Example:

    >>> model = build_model("attention", num_classes=10)
    >>> model.get_layer("attention").name
    'attention'
    """
    if architecture not in _BUILDERS:
        raise ValueError(
            f"Unknown architecture. Received: architecture={architecture!r}. "
            f"Expected one of: {', '.join(sorted(ARCHITECTURES))}; for "
            f"segmentation: {', '.join(sorted(SEGMENTATION_ARCHITECTURES))}."
        )
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(
        not isinstance(size, int) or size < 1 for size in input_shape
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"integers. Received: input_shape={input_shape!r}"
        )
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or (num_classes < 2)
    ):
        raise ValueError(
            "`num_classes` must be an integer of at least 2. Received: "
            f"num_classes={num_classes!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    outputs = _BUILDERS[architecture](inputs, num_classes)
    return keras.Model(inputs, outputs, name=architecture)
