"""Small U-Nets for segmentation: with additive attention gates, and without.

``attention_unet`` is a U-Net (Ronneberger et al., 2015) whose skip
connections pass through additive attention gates (Oktay et al., 2018):
for the skip features ``x`` (resolution ``s``) and the decoder's gating
features ``g`` (resolution ``s / 2``),
``alpha = resample(sigmoid(psi(relu(theta(x) + phi(g)))))`` with
``theta`` a 2×2 convolution of stride 2, ``phi`` and ``psi`` 1×1 convolutions,
``resample`` a bilinear up-sampling to ``s``, and the skip becomes
``x * alpha``. ``unet`` is its capacity-matched control: the same network
with each gate replaced by ``keras.layers.Identity`` (as ``--control``
does for the classifiers), so the two differ by the gates only.

Layer names (depth ``d`` = 1 at full resolution, 2 below): ``enc{d}_conv``,
``pool{d}``, ``bottleneck_conv``, ``up{d}``, ``gate{d}_theta``,
``gate{d}_phi``, ``gate{d}_add``, ``gate{d}_relu``, ``gate{d}_psi``,
``gate{d}_resample``, ``gate{d}`` (the multiply; ``gate{d}_control`` in the
control), ``concat{d}``, ``dec{d}_conv`` and ``predictions`` (a 1×1
convolution with a softmax over the pixel classes, class 0 the background).
"""

import keras
from keras import layers

__all__ = ["UNET_FILTERS", "build_unet"]

UNET_FILTERS = (8, 16, 32)
"""Filters of the two encoder blocks and the bottleneck."""


def _conv(x, filters, name):
    return layers.Conv2D(
        filters, 3, padding="same", activation="relu", name=name
    )(x)


def attention_gate(skip, gating, name, *, control=False):
    """The additive attention gate of Oktay et al. (2018); see the module.

    Args:
        skip: ``(B, s, s, F)`` encoder features.
        gating: ``(B, s / 2, s / 2, G)`` decoder features.
        name: Prefix of the gate's layer names.
        control: Replace the gate by identity (the control).

    Returns:
        The gated skip features, the shape of ``skip``.
    """
    if control:
        return layers.Identity(name=f"{name}_control")(skip)
    inner = max(skip.shape[-1] // 2, 1)
    # A 2x2 kernel of stride 2, as Oktay et al.'s code (kernel = stride);
    # a strided 1x1 kernel's gradient crashed TensorFlow 2.21 on CPU
    # (oneDNN, segmentation fault) from 64x64 inputs.
    theta = layers.Conv2D(inner, 2, strides=2, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(inner, 1, name=f"{name}_phi")(gating)
    joint = layers.Add(name=f"{name}_add")([theta, phi])
    joint = layers.Activation("relu", name=f"{name}_relu")(joint)
    psi = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(joint)
    alpha = layers.UpSampling2D(
        2, interpolation="bilinear", name=f"{name}_resample"
    )(psi)
    return layers.Multiply(name=name)([skip, alpha])


def build_unet(inputs, num_classes, *, with_attention=True):
    """A two-level U-Net on ``inputs`` (sides divisible by 4).

    Args:
        inputs: The symbolic input ``(B, H, W, C)``.
        num_classes: Pixel classes, background included (at least 2).
        with_attention: Additive gates on the skips, or identity.

    Returns:
        The ``(B, H, W, num_classes)`` softmax output.
    """
    height, width = inputs.shape[1:3]
    if height % 4 or width % 4:
        raise ValueError(
            "A U-Net halves its input twice: height and width must be "
            f"divisible by 4. Received: input_shape={tuple(inputs.shape[1:])}"
            ". Resize the images (--image-size)."
        )
    control = not with_attention
    first, second, bottom = UNET_FILTERS
    skip1 = _conv(inputs, first, "enc1_conv")
    skip2 = _conv(
        layers.MaxPooling2D(2, name="pool1")(skip1), second, "enc2_conv"
    )
    x = _conv(
        layers.MaxPooling2D(2, name="pool2")(skip2), bottom, "bottleneck_conv"
    )
    for depth, skip, filters in ((2, skip2, second), (1, skip1, first)):
        gated = attention_gate(skip, x, f"gate{depth}", control=control)
        up = layers.UpSampling2D(2, name=f"up{depth}")(x)
        x = layers.Concatenate(name=f"concat{depth}")([up, gated])
        x = _conv(x, filters, f"dec{depth}_conv")
    return layers.Conv2D(
        num_classes, 1, activation="softmax", name="predictions"
    )(x)


def unet_model(input_shape, num_classes, *, with_attention, name):
    """`build_unet` as a functional `keras.Model` named ``name``."""
    inputs = keras.Input(shape=input_shape, name="image")
    outputs = build_unet(inputs, num_classes, with_attention=with_attention)
    return keras.Model(inputs, outputs, name=name)
