"""Cluttered shapes: a seeded image set whose every object mask is known.

Each image shows one object of a shape class (``circle``, ``square``,
``triangle``, ``cross``) at a random position, scale, rotation and colour,
on a cluttered background: a sinusoidal texture, random strokes, distractor
fragments (arcs, bars and corners, never a whole class shape) and pixel
noise. The boolean foreground mask marks exactly the object's pixels.

Every image has its own random stream, derived from ``(seed, split, index)``
with `numpy.random.SeedSequence`, so:

- the same arguments always give the same pixels;
- the first ``k`` images of a set of ``n`` equal a set of ``k``;
- the ``"train"`` and ``"test"`` splits never share a stream;
- ``draw_objects=False`` renders the very same backgrounds with the object
  left out (no silhouette, no hole in the clutter): the background-only
  control, on which a model should stay at chance.

A spurious cue, for experiments on models that are right for the wrong
reasons: every background is tinted with one of ``len(CLASS_NAMES)``
colours. In the test split the tint is drawn uniformly and carries no
information. In the training split, with probability
``spurious_correlation`` the tint is the one tied to the image's class.

Example:

>>> images, labels, masks = generate(8, split="test", seed=0)
>>> images.shape, images.dtype, labels.dtype, masks.shape
((8, 32, 32, 3), dtype('uint8'), dtype('int64'), (8, 32, 32))
"""

import numpy as np
from skimage import draw

from explain_attn.options import check_fraction, check_int, check_positive_int

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CLUTTER",
    "DEMO_TRAIN_SIZE",
    "SAMPLE_SEED",
    "SAMPLE_TEST_PER_CLASS",
    "SPLITS",
    "generate",
    "sample_test_split",
    "write_split",
]

CLASS_NAMES = ("circle", "cross", "square", "triangle")
"""The shape classes, sorted as folder names sort (label = index)."""

SPLITS = ("train", "test")

DEFAULT_CLUTTER = 0.4
"""The clutter level of the bundled sample data."""

SAMPLE_SEED = 0
"""The seed of the bundled sample data (both splits)."""

DEMO_TRAIN_SIZE = 10_000
"""Images in the generated training split of the sample set (the demo)."""

SAMPLE_TEST_PER_CLASS = 250
"""Images per class in the committed test split (``sample_data/``)."""

# One colour per class for the spurious background tint (RGB in [0, 1]).
_TINTS = np.array(
    [
        [0.85, 0.35, 0.30],
        [0.30, 0.75, 0.35],
        [0.30, 0.40, 0.90],
        [0.85, 0.80, 0.30],
    ]
)
_SPLIT_KEYS = {"train": 1, "test": 2}


def generate(
    num_images,
    *,
    split="train",
    seed=SAMPLE_SEED,
    image_size=32,
    clutter=DEFAULT_CLUTTER,
    spurious_correlation=0.0,
    draw_objects=True,
):
    """Generates cluttered-shape images with their foreground masks.

    Args:
        num_images: Number of images, a positive integer.
        split: ``"train"`` or ``"test"``. The splits use disjoint random
            streams; ``spurious_correlation`` acts on ``"train"`` only.
        seed: Non-negative integer seed. Image ``i`` of a split depends only
            on ``(seed, split, i)`` and the options below.
        image_size: Height and width in pixels, at least 16. Shapes, strokes
            and fragments scale with it.
        clutter: Background clutter level in [0, 1]. 0 gives a plain tinted
            background; 1 gives full-contrast textures, about 5 strokes,
            4 distractor fragments and pixel noise of standard deviation
            0.04.
        spurious_correlation: Probability in [0, 1] that a training image's
            background tint is the one tied to its class (otherwise the
            tint is uniform over the classes' tints). Ignored for ``"test"``.
        draw_objects: If False, renders the same images with the object left
            out (the masks still mark where it would have been). For the
            background-only control.

    Returns:
        A tuple ``(images, labels, masks)``: ``(N, S, S, 3) uint8``,
        ``(N,) int64`` indices into `CLASS_NAMES` and ``(N, S, S) bool``
        foreground masks, each with at least one pixel set.

    Raises:
        ValueError: If an argument is out of range.
    """
    num_images = check_positive_int("num_images", num_images)
    seed = check_int("seed", seed, minimum=0)
    image_size = check_int("image_size", image_size, minimum=16)
    if split not in _SPLIT_KEYS:
        raise ValueError(
            f"Unknown split. Received: split={split!r}. Expected one of: "
            f"{', '.join(SPLITS)}."
        )
    clutter = check_fraction("clutter", clutter)
    spurious_correlation = check_fraction(
        "spurious_correlation", spurious_correlation
    )
    if split != "train":
        spurious_correlation = 0.0

    size = image_size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64) / size
    images = np.empty((num_images, size, size, 3), np.uint8)
    labels = np.empty(num_images, np.int64)
    masks = np.empty((num_images, size, size), bool)
    streams = np.random.SeedSequence([seed, _SPLIT_KEYS[split]]).spawn(
        num_images
    )
    for index, stream in enumerate(streams):
        rng = np.random.default_rng(stream)
        label = int(rng.integers(len(CLASS_NAMES)))
        canvas = _background(
            rng, rows, cols, label, clutter, spurious_correlation
        )
        _clutter(rng, canvas, clutter)
        mask = _shape_mask(rng, CLASS_NAMES[label], size)
        colour = _object_colour(rng, canvas)
        if draw_objects:
            canvas[mask] = colour
        noise = rng.normal(0.0, 0.04 * clutter, canvas.shape)
        canvas += noise
        images[index] = np.round(np.clip(canvas, 0.0, 1.0) * 255)
        labels[index] = label
        masks[index] = mask
    return images, labels, masks


def sample_test_split(*, image_size=32):
    """Returns the committed test split of ``sample_data/``, regenerated.

    ``SAMPLE_TEST_PER_CLASS`` images per class: the first ones of each class
    in the ``"test"`` stream of `SAMPLE_SEED` at `DEFAULT_CLUTTER`, in
    stream order, with their names.

    Returns:
        ``(images, labels, masks, names)``, the first three as in
        `generate`; ``names`` are the file stems, ``"<class>_<index>"``
        with the image's index in the stream.
    """
    # Enough of the stream that every class has its quota (checked below).
    total = SAMPLE_TEST_PER_CLASS * len(CLASS_NAMES)
    images, labels, masks = generate(
        int(total * 1.3),
        split="test",
        seed=SAMPLE_SEED,
        image_size=image_size,
        clutter=DEFAULT_CLUTTER,
    )
    keep = np.concatenate(
        [
            np.flatnonzero(labels == label)[:SAMPLE_TEST_PER_CLASS]
            for label in range(len(CLASS_NAMES))
        ]
    )
    if len(keep) != total:  # pragma: no cover - fixed by the seed.
        raise RuntimeError("The test stream is too short for its quota.")
    keep.sort()
    names = tuple(f"{CLASS_NAMES[labels[i]]}_{i:05d}" for i in keep)
    return images[keep], labels[keep], masks[keep], names


def write_split(directory, images, labels, masks, names):
    """Writes images and masks as PNG files in the folder layout.

    The layout is the one `explain_attn.data.load_dataset` reads:
    ``directory/images/<class>/<name>.png`` and
    ``directory/masks/<class>/<name>.png`` (0 = background, 255 = object).

    Args:
        directory: The destination folder; created if missing.
        images: ``(N, H, W, 3) uint8``.
        labels: ``(N,)`` indices into `CLASS_NAMES`.
        masks: ``(N, H, W) bool``.
        names: ``N`` file stems.
    """
    from pathlib import Path

    from PIL import Image

    directory = Path(directory)
    for kind in ("images", "masks"):
        for class_name in CLASS_NAMES:
            (directory / kind / class_name).mkdir(parents=True, exist_ok=True)
    for image, label, mask, name in zip(
        images, labels, masks, names, strict=True
    ):
        class_name = CLASS_NAMES[int(label)]
        Image.fromarray(image, "RGB").save(
            directory / "images" / class_name / f"{name}.png", optimize=True
        )
        Image.fromarray(mask.astype(np.uint8) * 255, "L").save(
            directory / "masks" / class_name / f"{name}.png", optimize=True
        )


def _background(rng, rows, cols, label, clutter, spurious_correlation):
    """A tinted sinusoidal texture, ``(S, S, 3) float64`` in [0, 1]."""
    if rng.random() < spurious_correlation:
        tint = _TINTS[label]
    else:
        tint = _TINTS[rng.integers(len(_TINTS))]
    first = rng.uniform(0.15, 0.85, 3)
    second = np.clip(first + rng.uniform(-0.6, 0.6, 3) * clutter, 0.0, 1.0)
    angle = rng.uniform(0.0, np.pi)
    frequency = rng.uniform(1.5, 5.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    wave = np.sin(
        2.0 * np.pi * frequency * (np.cos(angle) * cols + np.sin(angle) * rows)
        + phase
    )
    weight = (0.5 + 0.5 * wave)[..., None]
    texture = first * (1.0 - weight) + second * weight
    return 0.65 * texture + 0.35 * tint


def _clutter(rng, canvas, clutter):
    """Draws strokes and distractor fragments onto ``canvas`` in place."""
    size = canvas.shape[0]
    for _ in range(rng.poisson(5.0 * clutter)):
        start = rng.integers(0, size, 2)
        end = rng.integers(0, size, 2)
        r, c, value = draw.line_aa(*start, *end)
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        r, c, value = r[inside], c[inside], value[inside, None]
        colour = rng.uniform(0.0, 1.0, 3)
        canvas[r, c] = canvas[r, c] * (1.0 - value) + colour * value
    for _ in range(rng.poisson(4.0 * clutter)):
        kind = rng.integers(3)
        centre = rng.uniform(0.1, 0.9, 2) * size
        scale = rng.uniform(0.08, 0.16) * size
        angle = rng.uniform(0.0, 2.0 * np.pi)
        if kind == 0:  # An arc: a quarter to a third of a ring.
            mask = _arc(centre, scale, angle, rng.uniform(0.5, 0.7) * np.pi)
            mask = mask(size)
        elif kind == 1:  # A short bar.
            mask = _polygon_mask(
                _rectangle(scale, 0.12 * size / 4 + 1.0), centre, angle, size
            )
        else:  # A corner: two bars meeting at a right angle.
            width = 0.12 * size / 4 + 1.0
            arm = _rectangle(scale, width) + [0.0, scale - width]
            mask = _polygon_mask(arm, centre, angle, size) | _polygon_mask(
                arm[:, ::-1], centre, angle, size
            )
        canvas[mask] = rng.uniform(0.0, 1.0, 3)


def _arc(centre, radius, start, extent):
    def render(size):
        rows, cols = np.mgrid[0:size, 0:size]
        dr, dc = rows - centre[0], cols - centre[1]
        distance = np.hypot(dr, dc)
        angle = np.mod(np.arctan2(dr, dc) - start, 2.0 * np.pi)
        thickness = max(1.5, 0.05 * size)
        return (
            (distance >= radius)
            & (distance < radius + thickness)
            & (angle < extent)
        )

    return render


def _rectangle(half_length, half_width):
    """Corners of an axis-aligned rectangle centred on the origin."""
    return np.array(
        [
            [-half_width, -half_length],
            [-half_width, half_length],
            [half_width, half_length],
            [half_width, -half_length],
        ]
    )


def _polygon_mask(vertices, centre, angle, size):
    """Rasterises ``vertices`` (row, col) rotated by ``angle`` about 0."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    points = vertices @ rotation.T + centre
    mask = np.zeros((size, size), bool)
    r, c = draw.polygon(points[:, 0], points[:, 1], (size, size))
    mask[r, c] = True
    return mask


def _shape_mask(rng, class_name, size):
    """The object's mask: one shape at a random pose that fits the image."""
    radius = rng.uniform(0.26, 0.36) * size
    margin = radius + 1.0
    centre = rng.uniform(margin, size - margin, 2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    if class_name == "circle":
        mask = np.zeros((size, size), bool)
        r, c = draw.disk(tuple(centre), radius * 0.85, shape=(size, size))
        mask[r, c] = True
    elif class_name == "square":
        half = radius * 0.72
        mask = _polygon_mask(_rectangle(half, half), centre, angle, size)
    elif class_name == "triangle":
        corners = np.linspace(0.0, 2.0 * np.pi, 3, endpoint=False)
        vertices = radius * np.stack([np.sin(corners), np.cos(corners)], 1)
        mask = _polygon_mask(vertices, centre, angle, size)
    else:  # A plus-shaped cross of two bars.
        width = radius * 0.32
        bar = _rectangle(radius, width)
        mask = _polygon_mask(bar, centre, angle, size) | _polygon_mask(
            bar[:, ::-1], centre, angle, size
        )
    if not mask.any():  # pragma: no cover - radius >= 3.5 px by design.
        mask[int(centre[0]), int(centre[1])] = True
    return mask


def _object_colour(rng, canvas):
    """A random colour that stands out from the background's mean colour."""
    background = canvas.mean(axis=(0, 1))
    colour = rng.uniform(0.0, 1.0, 3)
    for _ in range(20):
        if np.linalg.norm(colour - background) >= 0.45:
            break
        colour = rng.uniform(0.0, 1.0, 3)
    return colour
