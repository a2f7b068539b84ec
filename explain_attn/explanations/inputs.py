"""Images in: validation against the model, batching, resize targets.

Shared by every explanation method, prediction and the faithfulness checks,
so that each checks images the same way and says the same thing when they
do not fit.

`model_batches` gives the batches the model takes, from whatever holds
the images: `explain_attn.data.adapter.as_source` makes it a `Source`
(its docstring lists what is accepted; files are read at the model's input
size and channel count) and the source's ``batches`` are checked against
the model's input. NumPy arrays, ``tf.data`` datasets and other iterables
are fed as given (unless ``input_scale``); files and data sources
(`explain_attn.data.Dataset`, `explain_attn.data.open_source`) are in
[0, 1].

Images in [0, 1] (files, sources, or any input with ``input_scale`` given)
are brought into the model's input scale (`InputScale`): ``"unit"`` as is,
``"byte"`` times 255, ``"symmetric"`` as ``2 x - 1``; then ``preprocess``,
if given, is applied to each batch.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from explain_attn.data.adapter import as_source
from explain_attn.data.images import SCALES, check_scale
from explain_attn.data.loaders import open_source
from explain_attn.data.source import ArraySource, Source, read_arrays
from explain_attn.graph import flat_graph, model_state
from explain_attn.options import check_positive_int

try:  # Added by the input-expectation work; absent until it lands.
    from explain_attn.models.preprocessing import describe_input
except ImportError:  # pragma: no cover - depends on the merge order.
    describe_input = None

__all__ = [
    "ClassBatches",
    "InputScale",
    "SCALE_FROM_UNIT",
    "all_images",
    "batches",
    "check_batch_size",
    "check_class_index",
    "check_images",
    "check_model_images",
    "check_shape",
    "image_count",
    "input_shape",
    "is_source",
    "model_batches",
    "model_channels",
    "open_for_model",
    "resize_target",
    "resolve_input_scale",
    "to_model_scale",
]

_WORDS = {
    "unit": "[0, 1]",
    "byte": "0-255 (byte)",
    "symmetric": "[-1, 1] (symmetric)",
}


@dataclasses.dataclass(frozen=True)
class InputScale:
    """The value scale images are fed to a model in, and why.

    Attributes:
        scale: ``"unit"`` [0, 1], ``"byte"`` [0, 255] or ``"symmetric"``
            [-1, 1].
        note: One sentence for the user (the CLI prints it; a report can
            show it): the scale and where it comes from.
        chosen: True if the user chose it, False if it was inferred.
    """

    scale: str
    note: str
    chosen: bool


def resolve_input_scale(model, input_scale=None):
    """The `InputScale` for ``model``: the user's, or inferred.

    Args:
        model: The model.
        input_scale: ``None`` to infer, or one of ``"unit"``, ``"byte"``,
            ``"symmetric"``.

    Inferred from `explain_attn.models.preprocessing.describe_input` when
    it knows (an in-model ``Rescaling`` means the model takes 0-255 bytes),
    else ``"unit"``, with the assumption stated in the note.

    Raises:
        ValueError: For an unknown scale.
    """
    if input_scale is not None:
        check_scale(input_scale)
        return InputScale(
            input_scale,
            f"Images are fed to the model as {_WORDS[input_scale]} "
            "(--input-scale).",
            True,
        )
    expectation = describe_input(model) if describe_input else None
    scale = getattr(expectation, "scale", None)
    if scale in SCALES:
        why = getattr(expectation, "note", "") or "the model's own layers"
        return InputScale(
            scale,
            f"Images are fed to the model as {_WORDS[scale]}, as its input "
            f"layers expect ({why}). Pass --input-scale to override.",
            False,
        )
    return InputScale(
        "unit",
        "Images are fed to the model as [0, 1]: it has no Rescaling or "
        "Normalization layer that says otherwise. If it was trained on 0-255 "
        "or [-1, 1] inputs, pass --input-scale byte or symmetric.",
        False,
    )


SCALE_FROM_UNIT = {
    "unit": (1.0, 0.0),
    "byte": (255.0, 0.0),
    "symmetric": (2.0, -1.0),
}
"""Scale name -> ``(factor, offset)`` taking [0, 1] images into it."""


def to_model_scale(images, scale):
    """``[0, 1]`` images (array or tensor) -> float32 tensor in ``scale``."""
    images = tf.cast(images, tf.float32)
    factor, offset = SCALE_FROM_UNIT[scale or "unit"]
    if (factor, offset) == (1.0, 0.0):
        return images
    return images * factor + offset


def model_channels(model):
    """The channels to give ``model``'s images: 1 or 3 (3 for others)."""
    channels = input_shape(model)[-1]
    return channels if channels in (1, 3) else 3


def is_source(data):
    """True for a `explain_attn.data.source.Source`."""
    return isinstance(data, Source)


def image_count(data):
    """The number of images in ``data``, or None when it is not known."""
    if isinstance(data, tf.data.Dataset):
        return None
    try:
        return len(data)
    except TypeError:
        return None


def model_batches(
    model, data, batch_size, *, input_scale=None, preprocess=None
):
    """Yields float32 tensors of images, as ``model`` takes them.

    Args:
        model: The model (its input shape and scale).
        data: Any accepted input (see the module's docstring).
        batch_size: Images per batch (a batched `tf.data.Dataset` or an
            iterable of arrays keeps its own batches).
        input_scale: ``None`` (arrays and datasets as given; files and
            sources in the scale `resolve_input_scale` infers), or the
            scale the model takes: images are then read as [0, 1] and
            brought into it.
        preprocess: ``None`` or a function applied to every batch after the
            scale, e.g. ``keras.applications.resnet.preprocess_input`` with
            ``input_scale="byte"``.

    Raises:
        TypeError: For an input of another kind, or a non-numeric batch.
        ValueError: For no images, or images whose shape does not match
            the model's input (checked on the first batch, before any work
            on it; the message names both shapes and the fix).
    """
    state = model_state(model)
    check_batch_size(batch_size)
    shape = input_shape(state)
    source = as_source(data, image_shape=shape, name="images")
    scale = None
    if input_scale is not None or source.in_unit:
        scale = resolve_input_scale(state, input_scale).scale
    count = 0
    for batch, _, _ in source.batches(batch_size):
        checked = (
            check_images(batch, shape)
            if not tf.is_tensor(batch)
            else (_check_tensor(batch, shape))
        )
        count += len(checked)
        tensor = (
            tf.constant(checked)
            if scale is None
            else to_model_scale(checked, scale)
        )
        yield (
            tensor
            if preprocess is None
            else tf.cast(preprocess(tensor), tf.float32)
        )
    if count == 0:
        raise ValueError("No images given. Pass at least one image.")


def all_images(data, shape=None):
    """Every image of ``data`` (any input of `as_source`) as one array: an
    array is returned as it is; other inputs are read whole. For the few
    images a faithfulness check perturbs, not for a whole data set."""
    return read_arrays(as_source(data, image_shape=shape, name="images"))[0]


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
    check_shape(images.shape[1:] if images.ndim else (), expected)
    if len(images) == 0:
        raise ValueError("No images given. Pass at least one image.")
    return images.astype(np.float32, copy=False)


def check_shape(shape, expected):
    """Raises a `ValueError` naming both shapes and the fix that helps.

    Args:
        shape: The per-image shape of the data, ``(H, W, C)``.
        expected: The model's per-image input shape (``None`` matches any).
    """
    shape, expected = tuple(shape), tuple(expected)
    if (
        len(shape) == 3
        and len(expected) == 3
        and not any(
            want is not None and want != got
            for want, got in zip(expected, shape, strict=True)
        )
    ):
        return
    if len(shape) != 3 or len(expected) != 3:
        fix = "Pass (N, H, W, C) images matching the model's input"
    elif expected[2] is not None and expected[2] not in (1, 3, shape[2]):
        fix = (
            f"The model takes {expected[2]} channels; images can be made "
            "gray (1) or RGB (3) only: use a model that takes 1 or 3, or "
            f"pass (N, H, W, {expected[2]}) arrays through the Python API"
        )
    elif expected[2] is not None and expected[2] != shape[2]:
        fix = (
            f"The model takes {expected[2]} channel(s), the images have "
            f"{shape[2]}: load them with channels={expected[2]} (the CLI "
            "does it for 1 and 3) or use a matching model"
        )
    else:
        height, width = expected[0] or shape[0], expected[1] or shape[1]
        fix = (
            f"Resize the images to {height}x{width} (--image-size "
            f"{height}x{width}, image_size=({height}, {width})) or use a "
            "matching model"
        )
    raise ValueError(
        f"Images of shape {shape} (per image) do not match the model's "
        f"input shape {expected}. {fix}."
    )


def _check_tensor(batch, expected):
    if not (batch.dtype.is_floating or batch.dtype.is_integer):
        raise TypeError(
            f"Images must be numeric. Received: dtype={batch.dtype.name}"
        )
    check_shape(tuple(batch.shape[1:]), expected)
    return tf.cast(batch, tf.float32)


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
    """Raises ``ValueError`` unless ``batch_size`` is a positive int."""
    check_positive_int("batch_size", batch_size)


def batches(images, batch_size):
    """Yields ``images`` in consecutive tensors of ``batch_size`` images."""
    for chunk, _, _ in ArraySource(images).batches(batch_size):
        yield tf.constant(chunk)


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


class ClassBatches:
    """``class_index`` handed out batch by batch, for inputs of any length.

    Args:
        class_index: As in `check_class_index`.
        data: The images (for their count, when known).
        num_classes: The model's number of classes.

    Raises:
        ValueError: As `check_class_index`; from `take` or `finish` when an
            array of classes and the images differ in length.
    """

    def __init__(self, class_index, data, num_classes):
        count = image_count(data)
        self._fill = None
        self._classes = None
        if class_index is None or np.ndim(class_index) == 0:
            check_class_index(class_index, 1, num_classes)
            self._fill = -1 if class_index is None else int(class_index)
        else:
            length = len(class_index) if count is None else count
            self._classes = check_class_index(class_index, length, num_classes)
        self._start = 0

    def take(self, length):
        """The next ``length`` classes, ``(length,)`` int32 (-1: predicted)."""
        start, self._start = self._start, self._start + length
        if self._classes is None:
            return np.full(length, self._fill, np.int32)
        if self._start > len(self._classes):
            self._mismatch()
        return self._classes[start : self._start]

    def finish(self):
        """Raises if fewer images came than there are classes."""
        if self._classes is not None and self._start != len(self._classes):
            self._mismatch()

    def _mismatch(self):
        raise ValueError(
            "class_index must have one entry per image. Received: "
            f"{len(self._classes)} entries for at least {self._start} images"
            if self._start > len(self._classes)
            else "class_index must have one entry per image. Received: "
            f"{len(self._classes)} entries for {self._start} images"
        )


def open_for_model(
    model, data, *, split="test", image_size=None, limit=None, input_scale=None
):
    """Opens ``data`` the way ``model`` takes it, before any work.

    The images get the model's channels (1 or 3) and are read in the scale
    `resolve_input_scale` chooses; a shape that still does not fit is an
    error naming both shapes and the fix.

    Returns:
        ``(source, scale)``: a data source (`explain_attn.data.open_source`)
        and the `InputScale`, whose ``note`` says what was assumed.
    """
    state = model_state(model)
    expected = input_shape(state)
    scale = resolve_input_scale(state, input_scale)
    source = open_source(
        data,
        split=split,
        image_size=image_size,
        limit=limit,
        channels=model_channels(state),
        input_scale=scale.scale,
    )
    check_shape(source.image_shape, expected)
    return source, scale
