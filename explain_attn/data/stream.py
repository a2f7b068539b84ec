"""Image folders, ``.npz`` files and image files read lazily by `tf.data`.

The streamed implementations of `explain_attn.data.source.Source`:
`FolderSource`, `NpzSource`, `FileSource` (a list of image files) and any
`ImageSource.subset` of them. ``source.batches(batch_size)`` yields
``(B, H, W, C) float32`` in [0, 1], ``(B,) int64`` (None for files without
labels) and ``(B, H, W) bool`` or None; a complete pass computes
``source.fingerprint()`` on the way, batch by batch, so it costs no second
pass. `ImageSource.decode` is the same decoding as a ``tf.data`` pipeline
over any order of indices: training's pipeline
(`explain_attn.models.training`) reads a streamed source through it.

Only a few batches are held at a time. An ``.npz`` saved with
`numpy.savez` is read image by image from the file (nothing is read before
it is needed, nothing read is kept, and images stay in their own dtype
until a batch is made float); one saved with
`numpy.savez_compressed` cannot be, so its arrays are read once, in their
own dtype (a uint8 image takes a quarter of its float32 size).

`ImageSource.batches` reads in the calling thread, not on ``tf.data``'s
threads (`ImageSource.parallel_reads`): reads there wait for the GIL
beside the report's scoring thread (`explain_attn.report.evaluate`).
Measured on 2 cores, the report on 1,000 images of 224² (faithfulness
off): from an ``.npz``, 42.0-42.2 s wall through ``tf.data`` (one map call
per image or one per batch alike) and 26.9 s read here; from a folder of
PNGs, 43.2-43.4 s and 30.2-31.2 s; the same CPU seconds within 6 % and the
same ``report.json``. Training still decodes on ``tf.data``'s threads
(`ImageSource.decode`).
"""

import os
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np

from explain_attn.data.folders import foreground_mask, list_folder
from explain_attn.data.images import (
    AlphaDroppedWarning,
    check_scale,
    check_scale_range,
    displayed_size,
    match_channels,
    read_image,
    resize_image,
    resize_mask,
    to_unit_float,
)
from explain_attn.data.source import Fingerprint, Source
from explain_attn.options import check_positive_int

__all__ = [
    "FileSource",
    "Fingerprint",
    "FolderSource",
    "ImageSource",
    "NpzSource",
    "balanced",
    "check_labels",
]

_SHOWN = 3  # How many offending names an error message lists.
_SCAN = 256  # Images per chunk when an .npz's value range is checked.


class ImageSource(Source):
    """Images read on demand, with labels and optional masks.

    Subclasses set the attributes below in ``__init__`` and define
    `read`; this class batches, prefetches and fingerprints.

    Attributes:
        name: A short name for messages and reports.
        class_names: The class names.
        labels: ``(N,)`` int64, one per image, in order.
        image_shape: ``(H, W, C)`` of every image.
        has_masks: Whether `batches` yields masks.
        mask_labels: The class names of label masks (masks are then
            ``uint8`` label maps, 0 the background), or None (``bool``
            foreground masks).
        notes: Sentences on what was converted (channels, scale), for the
            user to read.
    """

    name = "source"
    parallel_reads = False
    """Whether `batches` decodes on ``tf.data``'s threads (in parallel, by
    a map over image indices, ``deterministic=True``, prefetched) instead
    of in the calling thread. Off: on 2 cores beside the report's scoring
    it was slower (see the module); it may pay where decoding is the
    bottleneck (many cores, fast model passes), which is not measured."""
    class_names = ()
    labels = np.zeros(0, np.int64)
    image_shape = ()
    has_masks = False
    mask_labels = None

    def __init__(self):
        self.notes = []
        self._digest = None
        self._errors = []
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.labels)

    def batches(self, batch_size=64, *, start=0, stop=None):
        """Yields ``(images, labels, masks)`` NumPy chunks of images
        ``start`` to ``stop - 1`` (default: all); see the module.

        A complete pass also computes `fingerprint`.
        """
        check_positive_int("batch_size", batch_size)
        stop = len(self) if stop is None else min(stop, len(self))
        digest = None
        if self._digest is None and (start, stop) == (0, len(self)):
            digest = Fingerprint(
                len(self),
                self.image_shape,
                self.has_masks,
                self.class_names,
                self.mask_labels,
            )
        for images, masks in self._pipeline(batch_size, start, stop):
            labels = None
            if self.labels is not None:
                labels = self.labels[start : start + len(images)]
            masks = masks if self.has_masks else None
            start += len(images)
            if digest is not None:
                digest.update(images, labels, masks)
            yield images, labels, masks
        if digest is not None:
            self._digest = digest.hexdigest()
        self.finished()

    def fingerprint(self):
        """SHA-256 hex digest, equal to `Dataset.fingerprint`'s for the
        same data; reads the source once unless a pass already did."""
        if self._digest is None:
            for _ in self.batches(64):
                pass
        return self._digest

    def subset(self, indices, *, name=None):
        """The images at ``indices``, still read lazily from this source."""
        return _Subset(self, indices, name)

    def finished(self):
        """Hook called after a complete pass (e.g. to warn once)."""
        return None

    def decode(self, positions):
        """A ``tf.data`` map from int64 positions to ``(image, mask)``.

        Args:
            positions: A `tf.data.Dataset` of scalar int64 positions, in
                any order (images are decoded in parallel, in that order).

        Returns:
            A `tf.data.Dataset` of ``float32 (H, W, C)`` images and
            ``bool (H, W)`` masks (``(0, 0)`` when the source has none).
        """
        import tensorflow as tf

        return positions.map(
            self.reader(),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def reader(self):
        """A function for ``tf.data`` maps: an int64 position tensor to
        ``(image, mask)`` tensors, read by `read` (errors are kept for
        `read_error`)."""
        import tensorflow as tf

        mask_shape, mask_types = self._mask_layout()
        read = self._checked_read(mask_shape, mask_types[0])

        def load(position):
            image, mask = tf.numpy_function(
                read, [position], [tf.float32, mask_types[1]], stateful=False
            )
            image.set_shape(self.image_shape)
            mask.set_shape(mask_shape)
            return image, mask

        return load

    def _mask_layout(self):
        """``(mask shape, (NumPy dtype, TensorFlow dtype))`` as read:
        ``(0, 0)`` when the source has no masks; ``uint8`` label maps or
        ``bool`` foreground masks."""
        import tensorflow as tf

        height, width, _ = self.image_shape
        shape = (height, width) if self.has_masks else (0, 0)
        if self.mask_labels is not None:
            return shape, (np.uint8, tf.uint8)
        return shape, (bool, tf.bool)

    def _checked_read(self, mask_shape, mask_type):
        """`read` of a position, as float32 with an empty mask where there
        is none; a `ValueError` is kept for `read_error`."""

        def read(position):
            try:
                image, mask = self.read(int(position))
            except ValueError as error:
                with self._lock:
                    self._errors.append(error)
                raise
            if mask is None:
                mask = np.zeros(mask_shape, mask_type)
            return image.astype(np.float32, copy=False), mask

        return read

    def _pipeline(self, batch_size, start, stop):
        if not self.parallel_reads:
            yield from self._read_here(batch_size, start, stop)
            return
        import tensorflow as tf

        positions = tf.data.Dataset.range(start, stop)
        pipeline = self.decode(positions).batch(batch_size).prefetch(2)
        iterator = iter(pipeline.as_numpy_iterator())
        while True:
            try:
                images, masks = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as error:
                raise self.read_error(error) from None
            yield images, masks

    def _read_here(self, batch_size, start, stop):
        """The batches of `_pipeline`, read in the calling thread."""
        mask_shape, mask_types = self._mask_layout()
        read = self._checked_read(mask_shape, mask_types[0])
        for first in range(start, stop, batch_size):
            last = min(stop, first + batch_size)
            try:
                pairs = [read(position) for position in range(first, last)]
            except OSError as error:  # A file gone or cut short mid-pass.
                raise ValueError(
                    f"Reading {self.name!r} failed: {error}"
                ) from None
            yield (
                np.stack([image for image, _ in pairs]),
                np.stack([mask for _, mask in pairs]),
            )

    def read_failed(self):
        """Whether a `read` raised a `ValueError` (kept for `read_error`)."""
        return bool(self._errors)

    def read_error(self, error):
        """The `ValueError` to raise for a failed ``tf.data`` read: the
        source's own message when a read raised one."""
        if self._errors:
            return self._errors[0]
        return ValueError(f"Reading {self.name!r} failed: {error.message}")


class _Subset(ImageSource):
    """Some images of an `ImageSource`, read lazily from it."""

    def __init__(self, parent, indices, name):
        super().__init__()
        self._parent = parent
        self._indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.name = parent.name if name is None else name
        self.notes = parent.notes
        self.class_names = parent.class_names
        self.labels = None
        if parent.labels is not None:
            self.labels = np.asarray(parent.labels)[self._indices]
        self.image_shape = parent.image_shape
        self.has_masks = parent.has_masks
        self.parallel_reads = parent.parallel_reads

    def __len__(self):
        return len(self._indices)

    def read(self, position):
        return self._parent.read(int(self._indices[position]))


class FileSource(ImageSource):
    """A list of image files, read at one size and channel count.

    Args:
        paths: The files (`explain_attn.data.images.read_image` reads
            them; values in [0, 1]).
        size: ``(height, width)`` to resize to, or None to keep the size
            (then every image must have the first one's size).
        channels: 3 (RGB) or 1 (gray).

    The files have no labels (``labels`` is None) and no masks.
    """

    def __init__(self, paths, *, size=None, channels=3):
        super().__init__()
        self._paths = [Path(path) for path in paths]
        self._size, self._channels = size, channels
        self.name = "files"
        self.labels = None
        first = read_image(self._paths[0], size=size, channels=channels)
        self.image_shape = first.pixels.shape

    def __len__(self):
        return len(self._paths)

    def read(self, position):
        path = self._paths[position]
        pixels = read_image(path, size=self._size, channels=self._channels)
        if pixels.pixels.shape != self.image_shape:
            raise ValueError(
                f"Image files have different sizes (e.g. "
                f"{_hw(self.image_shape)} and {_hw(pixels.pixels.shape)} for "
                f"{str(path)!r}). Resize them to one size or use a model "
                "with a fixed input size."
            )
        return pixels.pixels, None


class FolderSource(ImageSource):
    """A data folder (see `explain_attn.data.folders`), read lazily.

    Args:
        directory: The folder (with ``images/<class>/...``).
        size: ``(height, width)`` to resize to, or None to keep the size
            (then every image must have the first one's size).
        limit: At most this many images, classes in turn (`balanced`).
        channels: 3 (RGB) or 1 (gray); see
            `explain_attn.data.images.match_channels`.
        name: The source's name (default: the folder's name).

    Raises:
        ValueError: As `list_folder`; when reading, as `read_image`, and for
            an image whose size differs from the first one's.
    """

    def __init__(
        self, directory, *, size=None, limit=None, channels=3, name=None
    ):
        super().__init__()
        self.directory = Path(directory)
        self.name = name or self.directory.name
        folder = list_folder(self.directory)
        labels = np.array([label for _, _, label in folder.files], np.int64)
        keep = balanced(labels, limit)
        self._files = [folder.files[i] for i in keep]
        self._foreground = folder.foreground
        self._size = size
        self._channels = channels
        self.class_names = folder.class_names
        self.labels = labels[keep]
        self.has_masks = folder.foreground is not None
        self.mask_labels = folder.mask_labels
        self._transparent = []
        self._converted = 0
        if size is None:
            self._check_sizes()
        first = read_image(self._files[0][1], size=size, channels=channels)
        self.image_shape = first.pixels.shape

    def _check_sizes(self):
        """Without a target size, every image must have one size: checked
        from the file headers, before any image is decoded."""
        sizes = {}
        for _, path, _ in self._files:
            found = displayed_size(path)
            if found is not None:
                sizes.setdefault(found, path)
        if len(sizes) > 1:
            first, second = sorted(sizes)[:2]
            raise ValueError(
                f"Images in {str(self.directory)!r} have different sizes "
                f"(e.g. {_hw(first)} and {_hw(second)}). Pass image_size "
                "(--image-size) to resize them all."
            )

    def read(self, position):
        key, path, _ = self._files[position]
        decoded = read_image(path, size=self._size, channels=self._channels)
        if decoded.pixels.shape != self.image_shape:
            raise ValueError(
                f"Images in {str(self.directory)!r} have different sizes "
                f"(e.g. {_hw(self.image_shape)} and "
                f"{_hw(decoded.pixels.shape)}). Pass image_size "
                "(--image-size) to resize them all."
            )
        with self._lock:
            if decoded.dropped_alpha:
                self._transparent.append(f"{key}{path.suffix}")
            self._converted += decoded.converted
        mask = None
        if self.has_masks:
            mask = foreground_mask(
                self._foreground[key],
                decoded,
                path,
                size=self._size,
                labels=self.mask_labels,
            )
        return decoded.pixels, mask

    def finished(self):
        if self._converted:
            word = "gray to RGB" if self._channels == 3 else "RGB to gray"
            note = (
                f"{self._converted} image(s) in {str(self.directory)!r} "
                f"were converted {word} for a {self._channels}-channel input"
            )
            if note not in self.notes:
                self.notes.append(note)
        if self._transparent:
            transparent, self._transparent = self._transparent, []
            warnings.warn(
                f"{len(transparent)} of {len(self)} image(s) in "
                f"{str(self.directory)!r} have transparent pixels (e.g. "
                f"{sorted(transparent)[0]}); their alpha channel was "
                "dropped, keeping the colour under it. Flatten them onto a "
                "background first if transparency matters.",
                AlphaDroppedWarning,
                stacklevel=4,
            )
        self._converted = 0


class NpzSource(ImageSource):
    """An ``.npz`` file of ``images``, ``labels`` and optional ``masks``.

    Args:
        path: The file.
        size: ``(height, width)`` to resize to, or None.
        limit: At most this many images, classes in turn (`balanced`).
        channels: 3 (RGB) or 1 (gray).
        scale: How float images are read: ``"unit"`` [0, 1], ``"byte"``
            [0, 255] or ``"symmetric"`` [-1, 1]; integer images are read
            by their dtype. The whole array's range is checked before any
            image is used.

    Raises:
        ValueError: For a file that is not an ``.npz`` of arrays, missing
            arrays, mismatched lengths, labels outside the class names,
            masks of another shape, NaN or float values outside ``scale``.
    """

    def __init__(
        self, path, *, size=None, limit=None, channels=3, scale="unit"
    ):
        super().__init__()
        self.path = Path(path)
        self.name = self.path.stem
        self._scale = check_scale(scale)
        arrays = _npz_arrays(self.path)
        images, labels, masks = _npz_checked(arrays, str(self.path))
        self.class_names = _npz_class_names(arrays, labels)
        check_labels(labels, self.class_names, str(self.path))
        self._keep = balanced(labels, limit)
        self.labels = labels[self._keep].astype(np.int64)
        self._images, self._masks = images, masks
        self.has_masks = masks is not None
        self._size, self._channels = size, channels
        if np.issubdtype(images.dtype, np.floating):
            for start in range(0, len(self._keep), _SCAN):
                chunk = images[self._keep[start : start + _SCAN]]
                check_scale_range(chunk, str(self.path), self._scale)
        first, _ = self.read(0)
        self.image_shape = first.shape

    def read(self, position):
        index = self._keep[position]
        image = to_unit_float(
            np.asarray(self._images[index]),
            str(self.path),
            batched=False,
            scale=self._scale,
        )
        image, note = match_channels(image, self._channels, str(self.path))
        if note and note not in self.notes:
            self.notes.append(note)
        mask = None
        if self.has_masks:
            mask = np.asarray(self._masks[index]) != 0
        if self._size is not None:
            image = resize_image(image, self._size)
            if mask is not None:
                mask = resize_mask(mask, self._size)
        return image, mask


def _npz_arrays(path):
    """``{name: array}`` of an ``.npz``; stored members read on demand."""
    shown = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        arrays = {}
        loaded = None
        for member in members:
            name = member.filename.removesuffix(".npy")
            if member.compress_type == zipfile.ZIP_STORED:
                arrays[name] = _mapped(path, member)
            else:
                if loaded is None:
                    loaded = np.load(path, allow_pickle=False)
                arrays[name] = loaded[name]
        if loaded is not None:
            loaded.close()
    except Exception as error:  # Bad zip, pickled objects, bad headers.
        raise ValueError(
            f"Cannot read {shown!r} as an .npz file ({type(error).__name__}:"
            f" {' '.join(str(error).split())[:120]}). Save it with "
            "numpy.savez(path, images=..., labels=..., class_names=...)."
        ) from None
    return arrays


def _mapped(path, member):
    """One uncompressed ``.npy`` in a zip, read on demand (`_StoredArray`;
    a memory map for Fortran-order and 0-d arrays)."""
    with open(path, "rb") as handle:
        handle.seek(member.header_offset)
        local = handle.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError("bad local zip header")
        name_length = int.from_bytes(local[26:28], "little")
        extra_length = int.from_bytes(local[28:30], "little")
        handle.seek(member.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError(
            "Object arrays cannot be loaded when allow_pickle=False"
        )
    if 0 in shape:
        return np.zeros(shape, dtype)
    if fortran or not shape:
        return np.memmap(
            path,
            dtype=dtype,
            mode="r",
            shape=shape,
            offset=offset,
            order="F" if fortran else "C",
        )
    return _StoredArray(path, offset, shape, dtype)


class _StoredArray:
    """A C-order array stored uncompressed at ``offset`` in a file.

    Indexing reads the rows asked for with ``os.pread`` (safe from several
    threads) and nothing else. Unlike a memory map, the pages read are not
    kept mapped, so a pass over a large file does not count in the
    process's resident memory (a memory map's pages would: 200 KB per
    224 x 224 image and mask, about 600 MiB more at 4,000 images).
    """

    def __init__(self, path, offset, shape, dtype):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._offset = int(offset)
        self._row = int(np.prod(self.shape[1:], dtype=np.int64))
        self._row_bytes = self._row * self.dtype.itemsize
        self._descriptor = os.open(path, os.O_RDONLY)

    def __del__(self):
        descriptor = getattr(self, "_descriptor", None)
        if descriptor is not None:
            os.close(descriptor)
            self._descriptor = None

    def __len__(self):
        return self.shape[0]

    def _rows(self, start, count):
        size = count * self._row_bytes
        data = os.pread(
            self._descriptor, size, self._offset + start * self._row_bytes
        )
        if len(data) != size:
            raise ValueError("the file is shorter than its array header says")
        return np.frombuffer(data, self.dtype).reshape(count, *self.shape[1:])

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            position = range(len(self))[index]  # IndexError when outside.
            return self._rows(position, 1)[0]
        positions = np.arange(len(self))[index]
        if positions.ndim != 1:
            raise IndexError("only integers, slices and 1-D index arrays")
        if len(positions) and np.all(np.diff(positions) == 1):
            return self._rows(int(positions[0]), len(positions))
        rows = np.empty((len(positions), *self.shape[1:]), self.dtype)
        for row, position in enumerate(positions):
            rows[row] = self._rows(int(position), 1)[0]
        return rows

    def __array__(self, dtype=None, copy=None):
        whole = self._rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype)


def _npz_checked(arrays, shown):
    missing = [key for key in ("images", "labels") if key not in arrays]
    if missing:
        raise ValueError(
            f"{shown!r} lacks the array(s) {', '.join(missing)}; it has "
            f"{', '.join(sorted(arrays)) or 'none'}. Save it with "
            "numpy.savez(path, images=..., labels=..., masks=..., "
            "class_names=...)."
        )
    images, labels = arrays["images"], np.asarray(arrays["labels"])
    masks = arrays.get("masks")
    labels = labels.reshape(-1) if labels.ndim == 2 else labels
    lengths = {"images": len(images), "labels": len(labels)}
    if masks is not None:
        lengths["masks"] = len(masks)
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{key}={n}" for key, n in lengths.items())
        raise ValueError(
            f"Arrays in {shown!r} have different lengths ({counts}); "
            "expected one label (and mask) per image."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` in {shown!r} must be integers. Received: "
            f"labels.dtype={labels.dtype}"
        )
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(
            f"Images in {shown!r} must be (N, H, W), (N, H, W, 1), "
            f"(N, H, W, 3) or (N, H, W, 4) with N > 0. Received: "
            f"shape={images.shape}"
        )
    if masks is not None and masks.shape != images.shape[:3]:
        raise ValueError(
            f"`masks` in {shown!r} must have shape {images.shape[:3]} to "
            f"match the images. Received: masks.shape={masks.shape}"
        )
    return images, labels, masks


def _npz_class_names(arrays, labels):
    if "class_names" in arrays:
        names = np.asarray(arrays["class_names"]).reshape(-1)
        return tuple(str(n) for n in names)
    count = int(labels.max()) + 1 if len(labels) else 0
    return tuple(str(n) for n in range(max(count, 1)))


def check_labels(labels, class_names, source):
    """Raises a `ValueError` for labels outside ``class_names``."""
    outside = (labels < 0) | (labels >= len(class_names))
    if outside.any():
        raise ValueError(
            f"Labels in {source!r} must be in [0, {len(class_names) - 1}] "
            f"(one per class name). Received: "
            f"{sorted(set(labels[outside].tolist()))[:_SHOWN]} with "
            f"class_names={list(class_names)[:10]}. Fix the labels or "
            "class_names."
        )


def balanced(labels, limit):
    """Indices of at most ``limit`` items taking classes in turn, sorted."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rank = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))
    return np.sort(order[:limit])


def _hw(shape):
    return f"{shape[0]}x{shape[1]}"
