"""Classifiers on `keras.applications` backbones, built offline.

`build_backbone` nests a backbone (``include_top=False``) between the
input and a head of global average pooling (``gap``) and a softmax layer
(``predictions``). Its layers keep their Keras names, so attention goes
after them by name (`explain_attn.add_attention`,
``explain-attn train --after``); the backbone's own name is the outer
part of their paths (``mobilenetv2_0.35_96/block_5_add``).

Weights: ``weights=None`` (random, nothing downloaded) or the path of a
local weights file for the backbone without its top (e.g. Keras'
``..._notop.h5``). What the input layer feeds the backbone depends on
that choice:

- **Random weights**: the images as `explain_attn.models.training`'s
  recipe standardises them (``explain-attn train`` adds the adapted
  ``input_standardization`` layer); for backbones that rescale their
  input themselves (EfficientNetB0 and MobileNetV3Small divide by 255) a
  ``Rescaling(255)`` layer named ``backbone_range`` undoes it.
- **Pretrained weights**: the family's own preprocessing of images in
  [0, 1], as Keras layers in front of the backbone (``backbone_range``):
  ``"tf"`` scales to [-1, 1], ``"torch"`` subtracts the ImageNet mean and
  divides by its standard deviation, ``"caffe"`` flips RGB to BGR, scales
  to [0, 255] and subtracts the mean (a fixed 1x1 convolution), ``"raw"``
  scales to [0, 255] for backbones that preprocess inside.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np

__all__ = ["BACKBONES", "MIN_IMAGE_SIZE", "build_backbone"]

MIN_IMAGE_SIZE = 32
"""Smallest height and width `keras.applications` accepts without a top."""

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])


@dataclasses.dataclass(frozen=True)
class _Family:
    constructor: str
    preprocessing: str
    has_alpha: bool = False


BACKBONES = {
    "MobileNetV2": _Family("MobileNetV2", "tf", has_alpha=True),
    "MobileNetV3Small": _Family("MobileNetV3Small", "raw", has_alpha=True),
    "ResNet50": _Family("ResNet50", "caffe"),
    "ResNet50V2": _Family("ResNet50V2", "tf"),
    "EfficientNetB0": _Family("EfficientNetB0", "raw"),
    "DenseNet121": _Family("DenseNet121", "torch"),
}
"""The `keras.applications` families ``explain-attn train`` can build: the
small mobile ones, the residual standard and the compound-scaled one."""


def _check_shape(name, input_shape):
    height, width = input_shape[:2]
    if min(height, width) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"Backbone {name} needs images of at least {MIN_IMAGE_SIZE}x"
            f"{MIN_IMAGE_SIZE}. Received: {height}x{width}. Load the data "
            f"with --image-size {MIN_IMAGE_SIZE} or more."
        )


def _preprocessing(family, pretrained, channels):
    """Keras layers from [0, 1] images to what the backbone expects."""
    kind = family.preprocessing if pretrained else None
    if kind is None:
        if family.preprocessing == "raw":
            return [keras.layers.Rescaling(255.0, name="backbone_range")]
        return []
    if kind == "raw":
        return [keras.layers.Rescaling(255.0, name="backbone_range")]
    if kind == "tf":
        return [keras.layers.Rescaling(2.0, offset=-1.0, name="backbone_range")]
    if channels != 3:
        raise ValueError(
            f"Pretrained {family.constructor} weights expect RGB images. "
            f"Received: {channels} channels. Leave out --weights."
        )
    if kind == "torch":
        return [
            keras.layers.Normalization(
                mean=_IMAGENET_MEAN,
                variance=_IMAGENET_STD**2,
                name="backbone_range",
            )
        ]
    # caffe: BGR = RGB reversed, times 255, minus the BGR mean.
    flip = np.eye(3)[::-1] * 255.0
    return [
        keras.layers.Conv2D(
            3,
            1,
            trainable=False,
            kernel_initializer=keras.initializers.Constant(
                flip.T.reshape(1, 1, 3, 3)
            ),
            bias_initializer=keras.initializers.Constant(
                [-103.939, -116.779, -123.68]
            ),
            name="backbone_range",
        )
    ]


def _load_weights(backbone, name, weights, input_shape):
    path = Path(weights)
    if not path.is_file():
        raise ValueError(
            f"--weights {weights}: no such file. Give a local weights file "
            f"of {name} without its top (include_top=False)."
        )
    try:
        backbone.load_weights(path)
    except Exception as error:  # Keras and h5py raise many kinds.
        reason = " ".join(str(error).split())[:200]
        raise ValueError(
            f"--weights {weights} does not fit {name} without its top at "
            f"input {tuple(input_shape)}: {type(error).__name__}: {reason}. "
            "Give the matching '_notop' weights file."
        ) from None


def build_backbone(
    name,
    *,
    input_shape,
    num_classes,
    weights=None,
    freeze=False,
    alpha=None,
):
    """A classifier on a `keras.applications` backbone, uncompiled.

    Args:
        name: A key of `BACKBONES` (case-insensitive).
        input_shape: ``(height, width, channels)``, both sides at least
            `MIN_IMAGE_SIZE`.
        num_classes: Number of classes, at least 2.
        weights: ``None`` for random weights, or the path of a local
            weights file of the backbone without its top.
        freeze: Make the backbone non-trainable (its BatchNormalization
            layers then run in inference mode).
        alpha: Width multiplier of the MobileNet families.

    Returns:
        A functional `keras.Model`: ``image`` input, ``backbone_range``
        (see the module docstring, when needed), the nested backbone,
        ``gap``, ``predictions``.

    Raises:
        ValueError: For an unknown backbone, images smaller than the
            backbone accepts, ``alpha`` for a family without it, or
            weights that are missing or do not fit.
    """
    by_lower = {key.lower(): key for key in BACKBONES}
    key = by_lower.get(str(name).lower())
    if key is None:
        raise ValueError(
            f"Unknown backbone. Received: --backbone {name}. Expected one "
            f"of: {', '.join(BACKBONES)}."
        )
    family = BACKBONES[key]
    input_shape = tuple(int(n) for n in input_shape)
    _check_shape(key, input_shape)
    options = {}
    if alpha is not None:
        if not family.has_alpha:
            raise ValueError(
                f"--alpha applies to the MobileNet backbones, not {key}. "
                "Leave it out."
            )
        options["alpha"] = float(alpha)
    constructor = getattr(keras.applications, family.constructor)
    try:
        backbone = constructor(
            input_shape=input_shape,
            include_top=False,
            weights=None,
            **options,
        )
    except ValueError as error:
        raise ValueError(f"Cannot build backbone {key}: {error}") from None
    if weights is not None:
        _load_weights(backbone, key, weights, input_shape)
    backbone.trainable = not freeze
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for layer in _preprocessing(family, weights is not None, input_shape[2]):
        x = layer(x)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=key.lower())
