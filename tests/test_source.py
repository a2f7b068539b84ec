"""One Source: what `as_source` makes of each input, subsets read lazily,
and training on a streamed folder equal to training on it in memory."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from explain_attn.data import Dataset, load_dataset, open_source
from explain_attn.data.adapter import BatchStream, as_source
from explain_attn.data.source import ArraySource, Source, read_arrays
from explain_attn.data.stream import FileSource, FolderSource, ImageSource
from explain_attn.models.training import ArraySplit, evaluate, train

SHAPE = (8, 8, 3)
COUNT = 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10 PNGs of two classes (dark ``a``, bright ``b``), with masks."""
    root = tmp_path_factory.mktemp("source_folder")
    rng = np.random.default_rng(7)
    for index in range(COUNT):
        name = ("a", "b")[index % 2]
        level = 0 if name == "a" else 128
        pixels = rng.integers(level, level + 128, SHAPE, dtype=np.uint8)
        mask = rng.random(SHAPE[:2]) > 0.5
        for kind in ("images", "masks"):
            (root / kind / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / f"images/{name}/{index:02d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(
            root / f"masks/{name}/{index:02d}.png"
        )
    return root


def test_as_source_makes_one_source_of_every_input(folder):
    dataset = load_dataset(folder)
    images = dataset.images
    files = sorted(str(p) for p in (folder / "images").glob("*/*.png"))
    made = {
        "source": as_source(dataset),
        "array": as_source(images),
        "pair": as_source((images, dataset.labels)),
        "path": as_source(folder),
        "path str": as_source(str(folder)),
        "files": as_source(files, image_shape=SHAPE),
        "list of images": as_source(list(images)),
        "tf.data": as_source(tf.data.Dataset.from_tensor_slices(images)),
        "generator": as_source(iter([images[:4], images[4:]])),
    }
    kinds = {name: type(source) for name, source in made.items()}
    assert kinds == {
        "source": Dataset,
        "array": ArraySource,
        "pair": ArraySource,
        "path": FolderSource,
        "path str": FolderSource,
        "files": FileSource,
        "list of images": ArraySource,
        "tf.data": BatchStream,
        "generator": BatchStream,
    }
    assert made["source"] is dataset and ArraySplit is ArraySource
    for name, source in made.items():
        assert isinstance(source, Source), name
        got = np.concatenate([np.asarray(b) for b, _, _ in source.batches(3)])
        np.testing.assert_allclose(got, images, atol=1e-6, err_msg=name)
    # Arrays and streams are fed as given; files and folders are [0, 1].
    assert [made[k].in_unit for k in ("array", "tf.data", "files")] == [
        False,
        False,
        True,
    ]
    np.testing.assert_array_equal(made["pair"].labels, dataset.labels)
    assert made["pair"].class_names == ("0", "1")
    assert made["array"].labels is None and made["files"].labels is None
    with pytest.raises(TypeError, match="Received: int"):
        as_source(3)
    with pytest.raises(TypeError, match="stream of batches"):
        made["generator"].read(0)


def test_a_subset_of_a_folder_is_read_lazily_and_equals_the_arrays(folder):
    dataset = load_dataset(folder)
    streamed = open_source(folder)
    indices = [7, 2, 5]
    subset = streamed.subset(indices, name="three")
    assert isinstance(subset, ImageSource)
    assert (len(subset), subset.name) == (3, "three")
    images, labels, masks = read_arrays(subset)
    np.testing.assert_array_equal(images, dataset.images[indices])
    np.testing.assert_array_equal(labels, dataset.labels[indices])
    np.testing.assert_array_equal(masks, dataset.masks[indices])
    assert subset.fingerprint() == dataset.subset(indices).fingerprint()


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_training_on_a_streamed_folder_equals_training_in_memory(folder):
    """Same seeded epoch orders, same batches: the same weights, with the
    folder decoded batch by batch instead of held in memory."""
    common = {"epochs": 2, "batch_size": 4, "verbose": 0, "check": False}
    in_memory, streamed = _tiny_model(), _tiny_model()
    train(in_memory, load_dataset(folder), **common)
    history = train(
        streamed,
        open_source(folder),
        validation_data=open_source(folder),
        **common,
    )
    assert len(history.history["val_loss"]) == 2
    for expected, got in zip(
        in_memory.get_weights(), streamed.get_weights(), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert evaluate(streamed, open_source(folder)) == evaluate(
        in_memory, load_dataset(folder)
    )


def test_training_refuses_inputs_without_labels(folder):
    files = sorted((folder / "images").glob("*/*.png"))
    for data in (np.zeros((2, *SHAPE)), files):
        with pytest.raises(TypeError, match="Dataset"):
            train(_tiny_model(), data, verbose=0)
