"""`Source`: the one interface of every image collection, and arrays.

Everything that reads images (training, maps, CAMs, export, the report,
the recorder, the faithfulness checks) takes a `Source`, made from what a
user passes by `explain_attn.data.adapter.as_source`. Implementations:

- `ArraySource`: arrays in memory, fed as given (any channels, any
  scale), with optional labels; `explain_attn.data.Dataset` is the checked
  kind, images in [0, 1] with labels and class names.
- `explain_attn.data.stream.ImageSource`: images read by index as they are
  needed (`FolderSource`, `NpzSource`, `FileSource`), in batches decoded
  in parallel by ``tf.data``; memory stays flat in the number of images.
- `explain_attn.data.adapter.BatchStream`: a ``tf.data.Dataset`` or a
  generator of batches, read once in its own order (no length, no
  reading by index).

What a source offers:

- ``len(source)``, ``source.labels`` (``(N,)`` int64, known before any
  image is read, or None when the data has none), ``source.class_names``,
  ``source.num_classes``, ``source.image_shape`` (``(H, W, C)``),
  ``source.has_masks``, ``source.name``, ``source.notes`` (what was
  converted, for the user to read) and ``source.in_unit`` (whether images
  are in [0, 1], so that they can be brought into a model's scale, or fed
  as given);
- ``source.read(i)``: ``(image (H, W, C) float32, mask (H, W) bool or
  None)``;
- ``source.batches(batch_size)``: ``(images, labels, masks)`` NumPy chunks
  in order (labels and masks None when the source has none);
- ``source.subset(indices)``: the images at ``indices`` as a source of the
  same kind (a streamed one still reads lazily);
- ``source.fingerprint()``: a SHA-256 of the data, equal for equal data
  whatever holds it.
"""

import abc

import numpy as np

from explain_attn.options import check_positive_int

__all__ = ["ArraySource", "Fingerprint", "Source", "read_arrays"]


class Source(abc.ABC):
    """Images with labels and optional masks; see the module docstring.

    Subclasses provide ``labels``, ``class_names``, ``image_shape``,
    ``has_masks``, ``name`` and ``notes`` (attributes or properties) and
    the abstract methods.
    """

    in_unit = True
    mask_labels = None
    """Class names of label-map masks (``uint8``, 0 the background), or
    None for foreground masks (``bool``)."""

    @abc.abstractmethod
    def __len__(self):
        """The number of images."""

    @property
    def num_classes(self):
        return len(self.class_names)

    @abc.abstractmethod
    def read(self, position):
        """``(image (H, W, C) float32, mask (H, W) bool or None)`` of the
        image at ``position`` (0 to ``len - 1``)."""

    @abc.abstractmethod
    def batches(self, batch_size=64, *, start=0, stop=None):
        """Yields ``(images, labels, masks)`` NumPy chunks of images
        ``start`` to ``stop - 1`` (default: all), in order."""

    @abc.abstractmethod
    def subset(self, indices, *, name=None):
        """The images at ``indices`` (in that order) as a source."""

    @abc.abstractmethod
    def fingerprint(self):
        """A SHA-256 hex digest of the images, labels, masks and names."""


class ArraySource(Source):
    """Images in memory, as given, with optional labels and masks.

    Arrays a user passes for inference (fed to the model unchanged:
    ``in_unit`` is False) and ``(images, labels)`` tuples for training
    become this; `explain_attn.data.Dataset` is the checked kind.

    Args:
        images: ``(N, H, W, C)`` array (any channels, any scale).
        labels: ``(N,)`` integers, or None when unknown.
        class_names: One name per class; by default ``"0"``, ``"1"``...
            up to the largest label.
        name: A short name for messages.
        masks: ``(N, H, W)`` foreground masks, or None.

    Raises:
        ValueError: With labels, for images that are not a non-empty
            ``(N, H, W, C)`` array or labels that are not one non-negative
            integer per image (the messages name ``name``).
    """

    in_unit = False

    def __init__(
        self, images, labels=None, class_names=None, name="arrays", masks=None
    ):
        if labels is not None:
            images, labels = _checked_pair(name, images, labels)
            if class_names is None:
                count = int(labels.max()) + 1
                class_names = tuple(str(k) for k in range(count))
        self.images = images
        self.labels = labels
        self.masks = masks
        self.class_names = tuple(class_names or ())
        self.name = name
        self.notes = ()

    def __len__(self):
        return len(self.images)

    @property
    def image_shape(self):
        """``(H, W, C)``, the shape a model's input must have."""
        return tuple(self.images.shape[1:])

    @property
    def has_masks(self):
        return self.masks is not None

    def read(self, position):
        """``(image, mask or None)`` at ``position`` (views, no copies)."""
        mask = None if self.masks is None else self.masks[position]
        return self.images[position], mask

    def batches(self, batch_size=64, *, start=0, stop=None):
        """Yields ``(images, labels, masks)`` chunks (views, no copies) of
        images ``start`` to ``stop - 1`` (default: all)."""
        batch_size = check_positive_int("batch_size", batch_size)
        stop = len(self) if stop is None else min(stop, len(self))
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            yield (
                self.images[first:last],
                None if self.labels is None else self.labels[first:last],
                None if self.masks is None else self.masks[first:last],
            )

    def subset(self, indices, *, name=None):
        indices = np.asarray(indices, dtype=np.int64)
        return ArraySource(
            self.images[indices],
            None if self.labels is None else self.labels[indices],
            self.class_names,
            self.name if name is None else name,
            None if self.masks is None else self.masks[indices],
        )

    def fingerprint(self):
        """SHA-256 over chunks of the arrays (`Fingerprint`; no copy)."""
        digest = Fingerprint(
            len(self),
            self.image_shape,
            self.has_masks,
            self.class_names,
            self.mask_labels,
        )
        for chunk in self.batches(256):
            digest.update(*chunk)
        return digest.hexdigest()


def read_arrays(source, batch_size=256):
    """``(images, labels, masks)`` of a whole source, as arrays.

    An `ArraySource` gives its own arrays (no copy); any other source is
    read once, batch by batch. For the few images a check perturbs, not
    for a whole data set.
    """
    if isinstance(source, ArraySource):
        return source.images, source.labels, source.masks
    parts = list(zip(*source.batches(batch_size), strict=True))
    labels = None if parts[1][0] is None else np.concatenate(parts[1])
    masks = None if parts[2][0] is None else np.concatenate(parts[2])
    return np.concatenate(parts[0]), labels, masks


def _checked_pair(name, images, labels):
    """``(images float32, labels int64)`` of an ``(images, labels)`` pair."""
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"`{name}` images must be a non-empty (N, H, W, C) array. "
            f"Received: shape {images.shape}"
        )
    if labels.shape != (len(images),) or not np.issubdtype(
        labels.dtype, np.integer
    ):
        raise ValueError(
            f"`{name}` labels must be {len(images)} integers. Received: "
            f"shape {labels.shape}, dtype {labels.dtype}"
        )
    if labels.min() < 0:
        raise ValueError(f"`{name}` labels must be non-negative.")
    return images, labels.astype(np.int64)


class Fingerprint:
    """A SHA-256 digest of images, labels and masks fed chunk by chunk.

    Fed the chunks of a data set in order, it gives the digest of
    `explain_attn.data.Dataset.fingerprint` for the same arrays: the images
    go into the hash as they come; labels (8 bytes per image; -1 for a
    source without labels) and masks (packed to 1 bit per pixel) are kept
    until the end, where the format puts them.

    Args:
        count: Number of images that will be fed.
        image_shape: ``(H, W, C)``.
        has_masks: Whether masks will be fed.
        class_names: The class names.
        mask_labels: The class names of label masks (fed as ``uint8``
            label maps, hashed byte by byte with the names), or None.
    """

    def __init__(
        self, count, image_shape, has_masks, class_names, mask_labels=None
    ):
        import hashlib

        self.count = int(count)
        self.image_shape = tuple(int(n) for n in image_shape)
        self.has_masks = bool(has_masks)
        self.class_names = tuple(class_names)
        self.mask_labels = mask_labels
        self._digest = hashlib.sha256()
        self._digest.update(_header(np.float32, (count, *self.image_shape)))
        self._labels = []
        self._masks = []
        self._seen = 0

    def update(self, images, labels, masks=None):
        """Adds the next chunk: ``(B, H, W, C)``, ``(B,)``, ``(B, H, W)``."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape[1:] != self.image_shape:
            raise ValueError(
                f"Chunk of shape {images.shape[1:]} per image does not match "
                f"the fingerprint's {self.image_shape}."
            )
        self._digest.update(memoryview(images).cast("B"))
        if labels is None:
            labels = np.full(len(images), -1)
        self._labels.append(np.asarray(labels, dtype=np.int64).copy())
        if self.has_masks and self.mask_labels is not None:
            self._masks.append(np.asarray(masks, np.uint8).tobytes())
        elif self.has_masks:
            flat = np.asarray(masks, dtype=bool).reshape(len(images), -1)
            self._masks.append(np.packbits(flat, axis=1))
        self._seen += len(images)

    def hexdigest(self):
        """The digest; raises if fewer or more images came than announced."""
        if self._seen != self.count:
            raise ValueError(
                f"The fingerprint expected {self.count} images and was fed "
                f"{self._seen}."
            )
        digest = self._digest.copy()
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0)
        digest.update(_header(np.int64, labels.shape))
        digest.update(labels.astype(np.int64).tobytes())
        if self.mask_labels is not None:
            height, width = self.image_shape[:2]
            digest.update(_header(np.uint8, (self.count, height, width)))
            for chunk in self._masks:
                digest.update(chunk)
            digest.update("\x00".join(self.mask_labels).encode() + b"\x01")
        elif self.has_masks:
            height, width = self.image_shape[:2]
            digest.update(_header(bool, (self.count, height, width)))
            for packed in self._masks:
                bits = np.unpackbits(packed, axis=1, count=height * width)
                digest.update(bits.tobytes())  # 0/1 bytes, as bool is.
        digest.update(repr(not self.has_masks).encode())
        digest.update("\x00".join(self.class_names).encode())
        return digest.hexdigest()


def _header(dtype, shape):
    return f"{np.dtype(dtype).str}{tuple(shape)}".encode()
