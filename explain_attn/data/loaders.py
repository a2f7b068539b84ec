"""Image-classification data with optional foreground masks, and loaders.

`load_dataset` reads the bundled sample set, CIFAR-10, a folder of images
or an ``.npz`` file into one small value, `Dataset`, whose arrays are ready
for a model: ``float32`` images in [0, 1], ``int64`` labels, ``bool``
masks. Every problem with the input raises a `ValueError` that names the
file or argument and says how to fix it.

The folder layout (class names are the folder names, sorted)::

    DIR/images/<class>/<name>.png        (also .jpg, .jpeg, .bmp)
    DIR/masks/<class>/<name>.png         (optional; non-zero = foreground)
    DIR/annotations/<class>/<name>.xml   (optional Pascal VOC boxes), or
    DIR/boxes.csv                        (optional boxes, header
                                          file,x_min,y_min,x_max,y_max)

Boxes become foreground masks, the union of an image's boxes. VOC
coordinates are 1-based and inclusive (the whole ``W x H`` image is
``1, 1, W, H``); ``boxes.csv`` coordinates are 0-based and inclusive
(``0, 0, W-1, H-1``), with ``file`` relative to ``DIR/images`` (e.g.
``circle/a.png``) and one row per box. A box partly outside its image is
clipped; one entirely outside is an error. Boxes are scaled with their
image when ``image_size`` resizes it. When masks or boxes are given, every
image needs a mask or boxes: an image without them is an error, while an
annotation without ``<object>`` or a CSV row with four empty coordinates
marks an image without foreground (an empty mask). Where an image has both
a mask and boxes, the mask wins. See `explain_attn.data.folders` and
`explain_attn.data.annotations`.

Images are read as they come (`explain_attn.data.images`): 8- and 16-bit
PNGs, grayscale, palette and RGBA images (alpha dropped, with one
`AlphaDroppedWarning` per load when some pixels were transparent), JPEG
with its EXIF orientation applied; with ``image_size``, large images are
decoded at reduced size.

A folder that holds ``train/`` and ``test/`` subfolders, each in this
layout, has splits; any other folder or ``.npz`` is one set, and
`train_test_datasets` holds out a stratified part of it for testing.
"""

import dataclasses
from pathlib import Path

import numpy as np

# The module, not its names (tests replace its sizes), by its full name:
# ``from explain_attn.data import synthetic`` would import the package
# this module is part of, a cycle (tests/test_architecture.py).
import explain_attn.data.synthetic as synthetic
from explain_attn.data.images import (
    IMAGE_SUFFIXES,
    check_scale,
    check_unit_range,
    match_channels,
    resize_image,
    resize_mask,
    to_unit_float,
)
from explain_attn.data.pipeline import fit_pipeline, positions
from explain_attn.data.source import ArraySource
from explain_attn.data.stream import (
    FolderSource,
    NpzSource,
    balanced,
    check_labels,
)
from explain_attn.options import check_positive_int

__all__ = [
    "IMAGE_SUFFIXES",
    "Dataset",
    "load_dataset",
    "mask_dtype",
    "open_source",
    "sample_data_directory",
    "split_dataset",
    "take_images",
    "tf_dataset",
    "train_test_datasets",
]

SPLITS = ("train", "test")

_SHOWN = 3  # How many offending file names an error message lists.


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset(ArraySource):
    """Images, labels and optional foreground masks of one data set.

    The constructor validates and converts; it never changes the arrays it
    is given (a conversion makes a copy, a matching array is used as is).

    The checked in-memory `explain_attn.data.source.Source`: `batches`
    (views, no copies), `read`, `subset` (also `take`), `fingerprint` (a
    stable SHA-256: equal data give equal digests across runs and
    machines, the name not included, so a trained model can be cached
    under it), ``labels``, ``class_names``, ``image_shape``,
    ``has_masks``, ``notes``.

    Args:
        images: ``(N, H, W, C) float32`` in [0, 1], C = 3 (RGB) or 1 (gray).
        labels: ``(N,) int64`` indices into ``class_names``.
        masks: ``(N, H, W) bool`` foreground masks, or None.
        class_names: The class names, one per label value.
        name: A short name for reports, e.g. ``"sample"``.
        notes: Sentences on what the loader converted (channels), for the
            user to read.
        mask_labels: The class names of label masks, or None. With them,
            ``masks`` are ``(N, H, W)`` integer label maps (0 the
            background, ``k`` the ``k``-th name), kept as ``uint8``.

    Raises:
        ValueError: If shapes disagree, values are NaN or outside [0, 1],
            or labels (or mask label values) fall outside their names.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    class_names: tuple
    name: str = "dataset"
    notes: tuple = ()
    mask_labels: tuple | None = None

    in_unit = True

    def __post_init__(self):
        images = np.asarray(self.images, dtype=np.float32)
        labels = np.asarray(self.labels)
        class_names = tuple(str(name) for name in self.class_names)
        if (
            images.ndim != 4
            or images.shape[-1] not in (1, 3)
            or not len(images)
        ):
            raise ValueError(
                "`images` must be a non-empty (N, H, W, 3) or (N, H, W, 1) "
                f"array. Received: images.shape={images.shape} in "
                f"{self.name!r}"
            )
        check_unit_range(images, self.name)
        if labels.shape != (len(images),) or not (
            np.issubdtype(labels.dtype, np.integer)
        ):
            raise ValueError(
                f"`labels` must be {len(images)} integers, one per image. "
                f"Received: labels.shape={labels.shape}, labels.dtype="
                f"{labels.dtype} in {self.name!r}"
            )
        labels = labels.astype(np.int64, copy=False)
        check_labels(labels, class_names, self.name)
        masks = self.masks
        if masks is not None:
            masks = np.asarray(masks)
            if masks.shape != images.shape[:3]:
                raise ValueError(
                    f"`masks` must have shape {images.shape[:3]} (one "
                    f"(H, W) mask per image). Received: masks.shape="
                    f"{masks.shape} in {self.name!r}"
                )
            masks = _checked_masks(masks, self.mask_labels, self.name)
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.mask_labels is not None:
            names = tuple(str(name) for name in self.mask_labels)
            object.__setattr__(self, "mask_labels", names)

    def subset(self, indices, *, name=None):
        """Returns the images at ``indices`` as a new `Dataset`."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(
            self.images[indices],
            self.labels[indices],
            None if self.masks is None else self.masks[indices],
            self.class_names,
            self.name if name is None else name,
            self.notes,
            self.mask_labels,
        )

    take = subset


def mask_dtype(source):
    """The dtype of ``source``'s masks: ``uint8`` label maps with
    ``mask_labels``, else ``bool``."""
    return bool if source.mask_labels is None else np.uint8


def _checked_masks(masks, mask_labels, name):
    """Foreground masks as bool; label maps (with ``mask_labels``) checked
    and kept as uint8."""
    if mask_labels is None:
        return masks.astype(bool, copy=False)
    if not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(
            "With `mask_labels`, `masks` are integer label maps. Received: "
            f"masks.dtype={masks.dtype} in {name!r}"
        )
    if masks.size and (masks.min() < 0 or masks.max() > len(mask_labels)):
        raise ValueError(
            f"`masks` hold label values from {masks.min()} to {masks.max()}, "
            f"outside 0 .. {len(mask_labels)} (the background and the "
            f"{len(mask_labels)} mask labels). Received: masks in {name!r}"
        )
    return masks.astype(np.uint8, copy=False)


def take_images(source, indices, *, name=None):
    """A few images of any source, read into an in-memory `Dataset`.

    The report reads the images it shows or perturbs this way (gallery
    examples, the faithfulness checks' samples) after streaming the rest.

    Args:
        source: A labelled `explain_attn.data.source.Source` in [0, 1]
            (a `Dataset`, a streamed folder or ``.npz``); its `subset`
            is read.
        indices: Positions of the images, in the order wanted.
        name: The new dataset's name (default: the source's).

    Returns:
        A `Dataset` of ``len(indices)`` images (none: a ValueError, as for
        an empty `Dataset`).
    """
    chosen = source.subset(np.asarray(indices, np.int64).reshape(-1), name=name)
    return chosen if isinstance(chosen, Dataset) else _materialised(chosen)


def load_dataset(
    source,
    *,
    split="test",
    image_size=None,
    limit=None,
    spurious_correlation=None,
    channels=3,
    input_scale="unit",
):
    """Loads a data set into memory (for large data: `open_source`).

    Args:
        source: One of:
            - ``"sample"``: the bundled cluttered shapes. ``"test"`` reads
              the committed files in ``sample_data/`` through the folder
              loader (regenerated with `explain_attn.data.synthetic` when
              the package has no copy); ``"train"`` generates
              `synthetic.DEMO_TRAIN_SIZE` images from the training stream.
            - ``"cifar10"``: Keras' CIFAR-10 loader (no masks).
            - a folder in the layout of this module's docstring, or one
              with ``train/`` and ``test/`` subfolders in that layout;
            - an ``.npz`` file with ``images`` ``(N, H, W[, C])``,
              ``labels`` ``(N,)``, optional ``masks`` ``(N, H, W)`` and
              optional ``class_names`` (default ``"0"``, ``"1"``, ...).
        split: ``"train"`` or ``"test"``. A folder without split subfolders
            and an ``.npz`` file are one set, returned whatever the split.
        image_size: None to keep the size, an int ``S`` for ``S x S`` or
            ``(height, width)``. Images are resized anti-aliased, masks by
            nearest neighbour (scikit-image).
        limit: None for all images, or a positive int: keep at most that
            many, taking classes in turn (so small limits stay balanced) and
            keeping the source order. For ``"sample"`` train, the first
            ``limit`` generated images.
        spurious_correlation: ``"sample"`` only: ``None`` for the data as
            shipped, or a probability in [0, 1] that a training image's
            background tint is the one tied to its class
            (`synthetic.generate`); the test split is never affected.
        channels: 3 (gray is repeated into RGB) or 1 (RGB becomes gray by
            `skimage.color.rgb2gray`): the count the model takes.
        input_scale: How float images of an ``.npz`` are read: ``"unit"``
            [0, 1], ``"byte"`` [0, 255] or ``"symmetric"`` [-1, 1]
            (integer images are read by their dtype).

    Returns:
        A `Dataset` of images in [0, 1]: alpha is dropped, 8-bit values are
        divided by 255 and 16-bit ones by 65535; its ``notes`` say which
        channel conversion was made.

    Warns:
        AlphaDroppedWarning: Once per folder if some pixels were transparent.

    Raises:
        ValueError: For an unknown split, a bad ``limit`` or
            ``image_size``, a missing path, an empty folder, missing class
            folders, an unreadable image (named), images without masks or
            masks without images, a mask whose size differs from its
            image's, bad boxes (named, with the fix), an ``.npz``
            missing arrays or with mismatched lengths,
            labels outside the class names, values NaN or outside [0, 1],
            or CIFAR-10 that cannot be downloaded.
    """
    _check_spurious_correlation(source, spurious_correlation)
    if isinstance(source, str) and source == "sample" and split == "train":
        _check_split_and_limit(split, limit)
        dataset = _load_sample(
            split, _check_image_size(image_size), limit, spurious_correlation
        )
        return _with_channels(dataset, _check_channels(channels))
    opened = open_source(
        source,
        split=split,
        image_size=image_size,
        limit=limit,
        channels=channels,
        input_scale=input_scale,
    )
    if isinstance(opened, Dataset):
        return opened
    return _materialised(opened)


def open_source(
    source,
    *,
    split="test",
    image_size=None,
    limit=None,
    channels=3,
    input_scale="unit",
):
    """Opens data for streaming: nothing is decoded until it is iterated.

    Folders and ``.npz`` files become a `FolderSource` or `NpzSource`
    (`explain_attn.data.stream`); ``"sample"`` and ``"cifar10"`` are small
    and come as an in-memory `Dataset`, which offers the same interface
    (``batches``, ``fingerprint``, ``labels``, ``class_names``,
    ``image_shape``, ``has_masks``, ``notes``). Arguments as in
    `load_dataset` (the generated ``"sample"`` train split excepted: use
    `load_dataset`).

    Raises:
        ValueError: As `load_dataset`, for what can be found before reading
            the images (paths, folder layout, ``.npz`` arrays and their
            value range); unreadable images when they are read.
    """
    _check_split_and_limit(split, limit)
    size = _check_image_size(image_size)
    channels = _check_channels(channels)
    check_scale(input_scale)
    if isinstance(source, str) and source in ("sample", "cifar10"):
        if source == "cifar10":
            dataset = _load_cifar10(split, size, limit)
        elif split == "train":
            dataset = _load_sample(split, size, limit)
        else:
            directory = sample_data_directory()
            if directory is None:
                dataset = _sample_test(size, limit)
            else:
                folder = FolderSource(
                    directory,
                    size=size,
                    limit=limit,
                    name="sample",
                    channels=channels,
                )
                return _materialised(folder)
        return _with_channels(dataset, channels)
    path = Path(source)
    if not path.exists():
        raise ValueError(
            f"Data not found: {str(path)!r}. Expected 'sample', 'cifar10', "
            "a folder DIR/images/<class>/<name>.png or an .npz file."
        )
    if path.is_dir():
        if (path / split / "images").is_dir():
            path = path / split
        return FolderSource(path, size=size, limit=limit, channels=channels)
    if path.suffix.lower() == ".npz":
        return NpzSource(
            path, size=size, limit=limit, channels=channels, scale=input_scale
        )
    raise ValueError(
        f"Unsupported data file {str(path)!r}: expected a folder "
        "DIR/images/<class>/<name>.png or an .npz file with 'images' and "
        "'labels'."
    )


def _check_spurious_correlation(source, spurious_correlation):
    is_sample = isinstance(source, str) and source == "sample"
    if spurious_correlation is not None and not is_sample:
        raise ValueError(
            "spurious_correlation applies to the generated 'sample' data "
            f"only. Received: source={str(source)!r}, "
            f"spurious_correlation={spurious_correlation!r}"
        )


def _check_split_and_limit(split, limit):
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split. Received: split={split!r}. Expected one of: "
            f"{', '.join(SPLITS)}."
        )
    check_positive_int("limit", limit, allow_none=True)


def sample_data_directory():
    """The committed ``sample_data/`` folder, or None if it is absent.

    It sits at the repository root, beside the package, in a source
    checkout or an editable install. A wheel does not ship it; then
    ``load_dataset("sample")`` regenerates the identical test split.
    """
    directory = Path(__file__).resolve().parents[2] / "sample_data"
    return directory if (directory / "images").is_dir() else None


def split_dataset(dataset, *, test_fraction=0.2, seed=0):
    """Splits a labelled source into stratified train and test parts.

    Every class puts ``round(test_fraction * count)`` of its images (at
    least one when it has two or more) into the test part, chosen by a
    seeded shuffle; both parts keep the original order.

    Args:
        dataset: The `Dataset` to split, or a streamed source (its parts
            are subsets, still read lazily).
        test_fraction: Fraction in (0, 1) held out for testing.
        seed: Seed of the shuffle.

    Returns:
        ``(train, test)`` of the source's kind, named ``"<name>:train"``
        and ``"<name>:test"``.

    Raises:
        ValueError: If ``test_fraction`` is outside (0, 1) or either part
            would be empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            "`test_fraction` must be in (0, 1). Received: "
            f"test_fraction={test_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(dataset.labels):
        members = np.flatnonzero(dataset.labels == label)
        count = round(test_fraction * len(members))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        test.extend(rng.permutation(members)[:count])
    is_test = np.zeros(len(dataset), bool)
    is_test[test] = True
    if is_test.all() or not is_test.any():
        raise ValueError(
            f"Cannot split {dataset.name!r} ({len(dataset)} images) into "
            "non-empty train and test parts. Add images or provide a test "
            "split (DIR/train and DIR/test)."
        )
    return (
        dataset.subset(np.flatnonzero(~is_test), name=f"{dataset.name}:train"),
        dataset.subset(np.flatnonzero(is_test), name=f"{dataset.name}:test"),
    )


def train_test_datasets(
    source,
    *,
    image_size=None,
    limit=None,
    test_fraction=0.2,
    seed=0,
    spurious_correlation=None,
    stream=False,
):
    """Loads training and test data for `source`, as the CLI does.

    ``"sample"``, ``"cifar10"`` and folders with ``train/`` and ``test/``
    use their own splits; any other folder or ``.npz`` is split with
    `split_dataset`. ``limit`` applies to each loaded set.
    ``spurious_correlation`` (``"sample"`` only, see `load_dataset`) acts on
    the training split. With ``stream``, folders and ``.npz`` files are
    opened (`open_source`), not loaded: training reads them batch by batch.

    Returns:
        ``(train, test)`` Datasets (streamed sources with ``stream``).
    """
    path = None if source in ("sample", "cifar10") else Path(source)
    _check_spurious_correlation(source, spurious_correlation)
    load = open_source if stream and path is not None else load_dataset
    if path is None or (path / "train" / "images").is_dir():
        extra = {}
        if load is load_dataset:
            extra["spurious_correlation"] = spurious_correlation
        train = load(
            source, split="train", image_size=image_size, limit=limit, **extra
        )
        test = load(source, split="test", image_size=image_size, limit=limit)
        return train, test
    dataset = load(source, image_size=image_size, limit=limit)
    return split_dataset(dataset, test_fraction=test_fraction, seed=seed)


def tf_dataset(dataset, *, batch_size=64, shuffle=False, seed=0):
    """A batched, prefetched `tf.data.Dataset` of ``(images, labels)``.

    Args:
        dataset: A `Dataset` or any labelled source read by index (a
            streamed folder or ``.npz`` is decoded as it is iterated;
            `explain_attn.data.pipeline.fit_pipeline`).
        batch_size: Positive batch size; the last batch may be smaller.
        shuffle: Reshuffle every epoch, with all images in the buffer.
        seed: The shuffle's seed: equal seeds give equal orders.

    Returns:
        A `tf.data.Dataset` yielding ``float32 (B, H, W, 3)`` and
        ``int64 (B,)``. In-memory arrays are copied into TensorFlow.
    """
    order = positions(len(dataset), shuffle=shuffle, seed=seed)
    return fit_pipeline(dataset, order, batch_size)


# ---------------------------------------------------------------- sources


def _load_sample(split, size, limit, spurious_correlation=None):
    """The generated train split (the test split: `open_source`)."""
    images, labels, masks = synthetic.generate(
        synthetic.DEMO_TRAIN_SIZE if limit is None else int(limit),
        split="train",
        seed=synthetic.SAMPLE_SEED,
        clutter=synthetic.DEFAULT_CLUTTER,
        spurious_correlation=spurious_correlation or 0.0,
    )
    return _finish(images, labels, masks, synthetic.CLASS_NAMES, "sample", size)


def _sample_test(size, limit):
    """The sample test split regenerated (a wheel has no sample_data/)."""
    images, labels, masks, _ = synthetic.sample_test_split()
    # The folder loader's order: by class, then by name (= stream index).
    by_class = np.argsort(labels, kind="stable")
    keep = by_class[balanced(labels[by_class], limit)]
    return _finish(
        images[keep],
        labels[keep],
        masks[keep],
        synthetic.CLASS_NAMES,
        "sample",
        size,
    )


def _load_cifar10(split, size, limit):
    import keras

    try:
        train, test = keras.datasets.cifar10.load_data()
    except Exception as error:  # Download errors come in many types.
        message = " ".join(str(error).split())[:160]
        raise ValueError(
            "Could not load CIFAR-10: it is downloaded on first use and "
            f"this failed ({type(error).__name__}: {message}). Connect to "
            "the internet once (it is then cached in ~/.keras/datasets), "
            "or use --data sample or your own folder."
        ) from None
    images, labels = train if split == "train" else test
    labels = np.asarray(labels).reshape(-1)
    keep = balanced(labels, limit)
    names = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    return _finish(images[keep], labels[keep], None, names, "cifar10", size)


def _materialised(source):
    """A streamed source read into one `Dataset` (one array, no stacking)."""
    images = np.empty((len(source), *source.image_shape), np.float32)
    masks = None
    if source.has_masks:
        masks = np.empty(
            (len(source), *source.image_shape[:2]), mask_dtype(source)
        )
    start = 0
    for chunk, _, chunk_masks in source.batches(64):
        images[start : start + len(chunk)] = chunk
        if masks is not None:
            masks[start : start + len(chunk)] = chunk_masks
        start += len(chunk)
    return Dataset(
        images,
        source.labels,
        masks,
        source.class_names,
        source.name,
        tuple(source.notes),
        source.mask_labels,
    )


# ---------------------------------------------------------------- helpers


def _finish(images, labels, masks, class_names, name, size):
    """Scales and converts an image array, resizes it, and validates."""
    images = to_unit_float(np.asarray(images), name, batched=True)
    images, note = match_channels(images, 3, name)
    if size is not None and images.shape[1:3] != size:
        images = np.stack([resize_image(image, size) for image in images])
        if masks is not None:
            masks = np.stack([resize_mask(mask, size) for mask in masks])
    notes = (note,) if note else ()
    return Dataset(images, labels, masks, tuple(class_names), name, notes)


def _with_channels(dataset, channels):
    """``dataset`` with ``channels`` channels (itself when they match)."""
    images, note = match_channels(dataset.images, channels, dataset.name)
    if not note:
        return dataset
    return Dataset(
        images,
        dataset.labels,
        dataset.masks,
        dataset.class_names,
        dataset.name,
        (*dataset.notes, note),
        dataset.mask_labels,
    )


def _check_channels(channels):
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(
            "`channels` must be 1 (gray) or 3 (RGB): the images can be made "
            f"one or the other. Received: channels={channels!r}. Use a model "
            "that takes 1 or 3 channels."
        )
    return int(channels)


def _check_image_size(image_size):
    if image_size is None:
        return None
    size = (
        (image_size, image_size)
        if isinstance(image_size, int | np.integer)
        and not isinstance(image_size, bool)
        else image_size
    )
    try:
        size = tuple(size)
    except TypeError:
        size = ()
    if len(size) != 2 or any(
        isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1
        for n in size
    ):
        raise ValueError(
            "`image_size` must be None, a positive int or (height, width). "
            f"Received: image_size={image_size!r}"
        )
    return (int(size[0]), int(size[1]))
