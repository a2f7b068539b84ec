"""The test zoo: models built the way public Keras code builds them.

Tiny inputs, ``weights=None``, nothing downloaded. Each builder returns an
uncompiled `keras.Model` with a softmax head over ``NUM_CLASSES`` classes.
"""

import keras
from keras import layers, ops

NUM_CLASSES = 3


def _head(inputs, features, name):
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="out")(
        pooled
    )
    return keras.Model(inputs, outputs, name=name)


def plain_cbam(x, prefix):
    """CBAM from plain layers: a channel gate and a spatial sigmoid conv."""
    channels = x.shape[-1]
    average = layers.GlobalAveragePooling2D(keepdims=True)(x)
    hidden = layers.Dense(max(channels // 4, 1), activation="relu")(average)
    weights = layers.Dense(channels, activation="sigmoid")(hidden)
    x = layers.Multiply(name=f"{prefix}_channel_mul")([x, weights])
    mean = ops.mean(x, axis=-1, keepdims=True)
    maximum = ops.max(x, axis=-1, keepdims=True)
    pooled = layers.Concatenate()([mean, maximum])
    gate = layers.Conv2D(
        1, 7, padding="same", activation="sigmoid", name=f"{prefix}_gate"
    )(pooled)
    return layers.Multiply(name=f"{prefix}_spatial_mul")([x, gate])


def mobilenet_v2_cbam(size=64):
    """MobileNetV2 nested, then a plain-layer CBAM after it."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None, include_top=False,
        alpha=0.35,
    )  # fmt: skip
    x = backbone(inputs)
    return _head(inputs, plain_cbam(x, "cbam"), "mobilenet_v2_cbam")


def mobilenet_v3_small(size=32):
    """MobileNetV3Small: 9 SE gates of hard sigmoids built from operators."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(size, size, 3), weights=None, include_top=False,
        minimalistic=False, alpha=0.75,
    )  # fmt: skip
    return _head(inputs, backbone(inputs), "mobilenet_v3_small")


def efficientnet_b0(size=32):
    """EfficientNetB0: 16 squeeze-and-excitation gates (sigmoid)."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.EfficientNetB0(
        input_shape=(size, size, 3), weights=None, include_top=False
    )
    return _head(inputs, backbone(inputs), "efficientnet_b0")


def ops_cbam(x, prefix):
    """CBAM written with `keras.ops` in the graph."""
    average = ops.mean(x, axis=(1, 2), keepdims=True)
    maximum = ops.max(x, axis=(1, 2), keepdims=True)
    dense = layers.Dense(x.shape[-1], name=f"{prefix}_mlp")
    weights = ops.sigmoid(dense(average) + dense(maximum))
    x = x * weights
    pooled = ops.concatenate(
        [ops.mean(x, axis=-1, keepdims=True),
         ops.max(x, axis=-1, keepdims=True)], axis=-1,
    )  # fmt: skip
    logits = layers.Conv2D(1, 7, padding="same", name=f"{prefix}_conv")(pooled)
    return x * ops.sigmoid(logits)


def resnet50_ops_cbam(size=32):
    """ResNet50 nested, then a CBAM written with keras.ops."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.ResNet50(
        input_shape=(size, size, 3), weights=None, include_top=False
    )
    features = backbone.get_layer("conv3_block4_out").output
    trunk = keras.Model(backbone.input, features, name="resnet50_trunk")
    return _head(inputs, ops_cbam(trunk(inputs), "cbam"), "resnet50_cbam")


def coordinate_attention(size=16):
    """A hand-written coordinate-attention block (Hou et al., 2021)."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    along_h = ops.mean(x, axis=2, keepdims=True)  # (H, 1, C)
    along_w = ops.mean(x, axis=1, keepdims=True)  # (1, W, C)
    joint = ops.concatenate(
        [along_h, ops.transpose(along_w, (0, 2, 1, 3))], axis=1
    )
    joint = layers.Conv2D(4, 1, activation="relu", name="ca_reduce")(joint)
    split_h, split_w = ops.split(joint, 2, axis=1)
    gate_h = layers.Conv2D(8, 1, activation="sigmoid", name="ca_h")(split_h)
    gate_w = layers.Conv2D(8, 1, activation="sigmoid", name="ca_w")(
        ops.transpose(split_w, (0, 2, 1, 3))
    )
    x = x * gate_h * gate_w
    return _head(inputs, x, "coordinate_attention")


def attention_unet_gate(size=16):
    """An Attention-U-Net-style additive gate (Oktay et al., 2018)."""
    inputs = keras.Input((size, size, 3))
    skip = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    coarse = layers.Conv2D(8, 3, strides=2, padding="same",
                           activation="relu")(skip)  # fmt: skip
    theta = layers.Conv2D(8, 1, strides=2)(skip)
    phi = layers.Conv2D(8, 1)(coarse)
    joint = layers.Activation("relu")(layers.Add()([theta, phi]))
    psi = layers.Conv2D(1, 1, activation="sigmoid", name="psi")(joint)
    gate = layers.UpSampling2D(2, interpolation="bilinear", name="psi_up")(psi)
    attended = layers.Multiply(name="ag_mul")([skip, gate])
    return _head(inputs, attended, "attention_unet_gate")


def hybrid_mha(size=16):
    """A small ConvNet with MultiHeadAttention over its positions."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(
        inputs
    )
    grid = x.shape[1]
    tokens = layers.Reshape((grid * grid, 8), name="tokens")(x)
    attended = layers.MultiHeadAttention(2, 4, name="mha")(tokens, tokens)
    x = layers.Reshape((grid, grid, 8))(attended + tokens)
    return _head(inputs, x, "hybrid_mha")


def rescaling_model(size=16):
    """A model trained on bytes: Rescaling(1/255) first."""
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    gate = layers.Conv2D(1, 3, padding="same", activation="sigmoid",
                         name="gate")(x)  # fmt: skip
    return _head(inputs, layers.Multiply()([x, gate]), "rescaling")


def grayscale_model(size=16):
    """A one-channel model with a spatial gate."""
    inputs = keras.Input((size, size, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    gate = layers.Conv2D(1, 3, padding="same", activation="sigmoid",
                         name="gate")(x)  # fmt: skip
    return _head(inputs, layers.Multiply()([x, gate]), "grayscale")


def bam_gate(size=16):
    """BAM-style ``x * (1 + sigmoid)`` with ops."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    logits = layers.Conv2D(1, 3, padding="same", name="bam_logits")(x)
    gate = 1.0 + ops.sigmoid(logits)
    return _head(inputs, x * gate, "bam")


def baseline(size=16, channels=3):
    """A plain ConvNet without attention, the report's reference."""
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(
        inputs
    )
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    return _head(inputs, x, "baseline")


def small_ops_cbam(size=16):
    """A tiny ConvNet with a CBAM written with keras.ops (fast to check)."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return _head(inputs, ops_cbam(x, "cbam"), "small_ops_cbam")
