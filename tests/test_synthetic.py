"""The cluttered-shapes generator and the committed sample split."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explain_attn.data import synthetic

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


def test_shapes_dtypes_and_masks():
    images, labels, masks = synthetic.generate(40, seed=3, image_size=24)
    assert images.shape == (40, 24, 24, 3) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.int64
    assert masks.shape == (40, 24, 24) and masks.dtype == bool
    assert set(labels.tolist()) == set(range(len(synthetic.CLASS_NAMES)))
    areas = masks.sum(axis=(1, 2))
    # Objects are large but never fill the image.
    assert areas.min() >= 20 and areas.max() < 0.6 * 24 * 24


def test_same_arguments_same_images_and_prefix_property():
    first = synthetic.generate(12, seed=5, clutter=0.7)
    second = synthetic.generate(12, seed=5, clutter=0.7)
    prefix = synthetic.generate(5, seed=5, clutter=0.7)
    for a, b, p in zip(first, second, prefix, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[:5], p)


def test_seeds_and_splits_use_different_streams():
    train = synthetic.generate(6, split="train", seed=0)[0]
    test = synthetic.generate(6, split="test", seed=0)[0]
    other = synthetic.generate(6, split="train", seed=1)[0]
    assert (train != test).mean() > 0.5
    assert (train != other).mean() > 0.5


def test_mask_is_exactly_the_object_on_a_plain_background():
    # Clutter 0: a single background colour, no strokes, no noise; the
    # object's pixels are the ones with the other colour.
    images, _, masks = synthetic.generate(30, seed=2, clutter=0.0)
    for image, mask in zip(images, masks, strict=True):
        background = image[0, 0] if not mask[0, 0] else image[-1, -1]
        differs = (image != background).any(axis=-1)
        np.testing.assert_array_equal(differs, mask)


def test_background_only_rendering_keeps_everything_but_the_object():
    images, labels, masks = synthetic.generate(20, seed=4, clutter=1.0)
    empty, empty_labels, empty_masks = synthetic.generate(
        20, seed=4, clutter=1.0, draw_objects=False
    )
    np.testing.assert_array_equal(labels, empty_labels)
    np.testing.assert_array_equal(masks, empty_masks)
    outside = ~masks
    np.testing.assert_array_equal(images[outside], empty[outside])
    # Inside the mask the object's colour is gone: most pixels change.
    assert (images[masks] != empty[masks]).any(axis=-1).mean() > 0.9


def _nearest_tint_accuracy(images, labels, masks):
    """Classifies by the mean background colour, nearest class centroid."""
    colours = np.array(
        [
            image[~mask].mean(axis=0)
            for image, mask in zip(images, masks, strict=True)
        ]
    )
    half = len(labels) // 2
    centroids = np.array(
        [colours[:half][labels[:half] == k].mean(axis=0) for k in range(4)]
    )
    distance = np.linalg.norm(colours[half:, None] - centroids, axis=-1)
    return (distance.argmin(axis=1) == labels[half:]).mean()


def test_spurious_correlation_ties_the_tint_to_the_class_in_train_only():
    kwargs = dict(num_images=400, seed=0, image_size=16, clutter=0.0)
    tied = synthetic.generate(split="train", spurious_correlation=1.0, **kwargs)
    free = synthetic.generate(split="train", spurious_correlation=0.0, **kwargs)
    test = synthetic.generate(split="test", spurious_correlation=1.0, **kwargs)
    assert _nearest_tint_accuracy(*tied) > 0.45
    assert _nearest_tint_accuracy(*free) < 0.35
    assert _nearest_tint_accuracy(*test) < 0.35


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_images": 0}, "num_images"),
        ({"num_images": 2.0}, "num_images"),
        ({"split": "validation"}, "Unknown split"),
        ({"clutter": 1.5}, "clutter"),
        ({"spurious_correlation": -0.1}, "spurious_correlation"),
        ({"image_size": 8}, "image_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_with_the_argument_named(kwargs, message):
    arguments = {"num_images": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic.generate(**arguments)


def _read_folder(root):
    found = {}
    for path in sorted((root / "images").glob("*/*.png")):
        mask_path = root / "masks" / path.parent.name / path.name
        found[(path.parent.name, path.stem)] = (
            np.asarray(Image.open(path)),
            np.asarray(Image.open(mask_path)),
        )
    return found


def test_regeneration_reproduces_the_committed_sample_files(tmp_path):
    committed = _read_folder(SAMPLE_DATA)
    assert len(committed) == (
        synthetic.SAMPLE_TEST_PER_CLASS * len(synthetic.CLASS_NAMES)
    )
    synthetic.write_split(tmp_path, *synthetic.sample_test_split())
    regenerated = _read_folder(tmp_path)
    assert sorted(regenerated) == sorted(committed)
    for key, (image, mask) in committed.items():
        assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
        np.testing.assert_array_equal(regenerated[key][0], image)
        np.testing.assert_array_equal(regenerated[key][1], mask)
        assert set(np.unique(mask)) <= {0, 255}


def test_sample_split_names_classes_and_balance():
    images, labels, masks, names = synthetic.sample_test_split()
    counts = np.bincount(labels, minlength=len(synthetic.CLASS_NAMES))
    assert counts.tolist() == [synthetic.SAMPLE_TEST_PER_CLASS] * 4
    assert all(
        name.startswith(synthetic.CLASS_NAMES[label] + "_")
        for name, label in zip(names, labels, strict=True)
    )
    assert len(set(names)) == len(names)
    # The names' stream indices point back at the generator's images.
    index = int(names[7].rsplit("_", 1)[1])
    stream = synthetic.generate(index + 1, split="test", seed=0)
    np.testing.assert_array_equal(stream[0][index], images[7])
    np.testing.assert_array_equal(stream[2][index], masks[7])
