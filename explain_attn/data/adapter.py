"""`as_source`: the one way in for data, from what a user passes to a Source.

As Keras' ``get_data_adapter`` turns arrays, ``tf.data``, generators and
datasets into one adapter that ``fit``, ``evaluate`` and ``predict``
consume, `as_source` turns every accepted input into an
`explain_attn.data.source.Source`, which training, maps, CAMs, export,
the report, the recorder and the faithfulness checks read:

- a `Source` (a `Dataset`, a streamed folder or ``.npz``): as it is;
- a NumPy array ``(N, H, W, C)``: an `ArraySource`, fed as given;
- an ``(images, labels)`` tuple (images rank 4, labels rank 1): an
  `ArraySource` with labels, checked;
- a path (``str`` or `pathlib.Path`: a folder, an ``.npz``), ``"sample"``
  or ``"cifar10"``: `explain_attn.data.loaders.open_source`;
- a list or tuple of image file paths: a `FileSource`, read at
  ``image_shape``'s size and channels;
- a list or tuple of ``(H, W, C)`` arrays: one `ArraySource`;
- a ``tf.data.Dataset`` of images or ``(images, ...)`` tuples, or any
  other iterable of ``(B, H, W, C)`` batches (e.g. a generator): a
  `BatchStream`, read once in its own order.
"""

from pathlib import Path

import numpy as np

from explain_attn.data.loaders import open_source
from explain_attn.data.source import ArraySource, Source
from explain_attn.data.stream import FileSource

__all__ = ["BatchStream", "as_source"]


def as_source(
    data,
    *,
    image_shape=None,
    name="arrays",
    split="test",
    image_size=None,
    limit=None,
    input_scale="unit",
):
    """The `Source` for ``data`` (see the module for what is accepted).

    Args:
        data: What the user passed.
        image_shape: The model's per-image input shape ``(H, W, C)``, if
            known: files are read at its size (when fixed) and channels,
            paths opened with its channels (1 or 3; else 3).
        name: The name of the argument, for messages and array sources.
        split, image_size, limit, input_scale: For a path, ``"sample"``
            or ``"cifar10"``, as `explain_attn.data.loaders.open_source`.

    Raises:
        TypeError: For an input of another kind.
        ValueError: As `open_source` for paths; for an ``(images,
            labels)`` pair whose labels are not one non-negative integer
            per image.
    """
    channels = _channels(image_shape)
    if isinstance(data, Source):
        return data
    if isinstance(data, np.ndarray):
        return ArraySource(data, name=name)
    if _is_pair(data):
        return ArraySource(data[0], data[1], name=name)
    if isinstance(data, str | Path):
        return open_source(
            data,
            split=split,
            image_size=image_size,
            limit=limit,
            channels=channels,
            input_scale=input_scale,
        )
    if isinstance(data, list | tuple) and _are_paths(data):
        return FileSource(data, size=_size(image_shape), channels=channels)
    if isinstance(data, bytes) or not hasattr(data, "__iter__"):
        raise TypeError(
            "Images must be an (N, H, W, C) array, a tf.data.Dataset, an "
            "iterable of batches, a list of image files or a data source "
            f"(explain_attn.data.open_source). Received: {type(data).__name__}"
        )
    if isinstance(data, list | tuple) and data and np.ndim(data[0]) == 3:
        return ArraySource(np.asarray(data), name=name)
    return BatchStream(data, name=name)


def _channels(image_shape):
    channels = None if image_shape is None else image_shape[-1]
    return channels if channels in (1, 3) else 3


def _size(image_shape):
    if image_shape is None:
        return None
    height, width = image_shape[:2]
    return None if height is None or width is None else (height, width)


def _is_pair(data):
    """An ``(images, labels)`` tuple: a rank-4 array and a rank-1 one."""
    return (
        isinstance(data, tuple)
        and len(data) == 2
        and not _are_paths(data)
        and np.ndim(data[0]) == 4
        and np.ndim(data[1]) == 1
    )


def _are_paths(data):
    return bool(data) and all(isinstance(p, str | Path) for p in data)


class BatchStream(Source):
    """A ``tf.data.Dataset`` or an iterable of batches, read once.

    Its batches are the data's own (a ``tf.data.Dataset`` of single images
    is batched here); it has no length known in advance, no labels and no
    reading by index. Images are fed as given (``in_unit`` is False).

    Raises:
        TypeError: From `batches`, for a ``tf.data.Dataset`` whose
            elements are not images or tuples starting with images.
    """

    in_unit = False
    labels = None
    has_masks = False
    class_names = ()
    notes = ()
    image_shape = None

    def __init__(self, data, *, name="batches"):
        self._data = data
        self.name = name

    def __len__(self):
        raise TypeError(
            f"{self.name!r} is a stream of batches: its length is known "
            "once it has been read."
        )

    def read(self, position):
        raise TypeError(self._not_indexed("read by index"))

    def subset(self, indices, *, name=None):
        raise TypeError(self._not_indexed("cut into subsets"))

    def fingerprint(self):
        raise TypeError(self._not_indexed("fingerprinted"))

    def _not_indexed(self, what):
        return (
            f"{self.name!r} is a stream of batches and cannot be {what}. "
            "Pass an (N, H, W, C) array or a data source instead."
        )

    def batches(self, batch_size=64, *, start=0, stop=None):
        """Yields ``(images, None, None)``, the stream's own batches (the
        whole stream: it has no positions to start or stop at)."""
        import tensorflow as tf

        if (start, stop) != (0, None):
            raise TypeError(self._not_indexed("split into shards"))

        if not isinstance(self._data, tf.data.Dataset):
            for batch in self._data:
                yield np.asarray(batch), None, None
            return
        dataset, spec = self._data, self._data.element_spec
        if isinstance(spec, tuple | list):
            dataset = dataset.map(lambda *parts: parts[0])
            spec = spec[0]
        if isinstance(spec, dict) or spec.shape.rank not in (3, 4):
            raise TypeError(
                "A tf.data.Dataset of images must yield (H, W, C) or "
                "(B, H, W, C) tensors, or tuples starting with them. "
                f"Received: element_spec={spec}"
            )
        if spec.shape.rank == 3:
            dataset = dataset.batch(batch_size)
        for batch in dataset.prefetch(tf.data.AUTOTUNE):
            yield batch, None, None
