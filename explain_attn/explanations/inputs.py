"""Images in: validation against the model, batching, resize targets.

Shared by every explanation method, prediction and the faithfulness checks,
so that each checks images the same way and says the same thing when they
do not fit.
"""

import numpy as np
import tensorflow as tf

from explain_attn.models.graph import flat_graph

__all__ = [
    "batches",
    "check_batch_size",
    "check_class_index",
    "check_images",
    "check_model_images",
    "input_shape",
    "resize_target",
]


def input_shape(model):
    """The model's input shape without the batch axis, e.g. ``(32, 32, 3)``."""
    return tuple(flat_graph(model).inputs[0].shape[1:])


def check_model_images(model, images):
    """Validates ``images`` against the model's input; returns float32.

    Returns a float32 array (a new one when a conversion is needed; the
    caller's array is never written to).

    Raises:
        TypeError: If the array is not numeric.
        ValueError: If it is empty or its shape does not match the model's
            input shape (the message names both).
    """
    return check_images(images, input_shape(model))


def check_images(images, expected):
    """Validates ``images`` against a per-image shape; returns float32.

    Args:
        images: ``(N, H, W, C)`` numeric array.
        expected: The expected per-image shape; ``None`` entries match any
            size.

    Raises:
        TypeError: If the array is not numeric.
        ValueError: If it is empty or its shape does not match.
    """
    images = np.asarray(images)
    if images.dtype == bool or not np.issubdtype(images.dtype, np.number):
        raise TypeError(
            f"Images must be a numeric array. Received: dtype={images.dtype}"
        )
    if images.ndim != 4 or any(
        want is not None and want != got
        for want, got in zip(expected, images.shape[1:], strict=False)
    ):
        raise ValueError(
            f"Images of shape {images.shape[1:]} (per image) do not match "
            f"the model's input shape {expected}. Resize the data to the "
            "model's input (e.g. `--image-size`) or use a matching model."
        )
    if len(images) == 0:
        raise ValueError("No images given. Pass at least one image.")
    return images.astype(np.float32, copy=False)


def resize_target(shape, resize_to):
    """Turns ``resize_to`` into ``None`` or ``(height, width)``.

    Args:
        shape: The model's per-image input shape (for ``"input"``).
        resize_to: ``None``, ``"input"`` or ``(height, width)`` of positive
            integers.

    Raises:
        ValueError: For any other value, or ``"input"`` on a model whose
            input height or width is not fixed.
    """
    if resize_to is None:
        return None
    if isinstance(resize_to, str) and resize_to == "input":
        height, width = shape[:2]
        if height is None or width is None:
            raise ValueError(
                "resize_to='input' needs a model with a fixed input height "
                "and width. Pass resize_to=(height, width) instead."
            )
        return (int(height), int(width))
    if (
        isinstance(resize_to, tuple | list)
        and len(resize_to) == 2
        and all(isinstance(v, int) and v > 0 for v in resize_to)
    ):
        return (resize_to[0], resize_to[1])
    raise ValueError(
        "resize_to must be None, 'input' or (height, width) of positive "
        f"integers. Received: resize_to={resize_to!r}"
    )


def check_batch_size(batch_size):
    """Raises unless ``batch_size`` is a positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int. Received: {batch_size!r}")
    if batch_size < 1:
        raise ValueError(
            f"batch_size must be at least 1. Received: batch_size={batch_size}"
        )


def batches(images, batch_size):
    """Yields ``images`` in consecutive tensors of ``batch_size`` images."""
    check_batch_size(batch_size)
    for start in range(0, len(images), batch_size):
        yield tf.constant(images[start : start + batch_size])


def check_class_index(class_index, count, num_classes=None):
    """``class_index`` as ``(count,)`` int32, -1 meaning "predicted".

    Args:
        class_index: ``None`` (each image's predicted class), an int for
            every image, or ``(count,)`` ints.
        count: Number of images.
        num_classes: The model's number of classes, if known.

    Raises:
        TypeError: If it is not ``None``, an int or ints.
        ValueError: If its length or values do not fit.
    """
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
    high = np.inf if num_classes is None else num_classes
    if count and (values.min() < 0 or values.max() >= high):
        raise ValueError(
            f"class_index must lie in [0, {high}). Received: "
            f"values from {values.min()} to {values.max()}"
        )
    return values.astype(np.int32)
