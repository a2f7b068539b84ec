"""Data as a stream: lazy folders and .npz files, the fingerprint fed batch
by batch, one adapter for every kind of input, maps written as made."""

import hashlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from explain_attn import build_model, save_model
from explain_attn.cli import main
from explain_attn.data import Dataset, load_dataset, open_source
from explain_attn.data.stream import Fingerprint, FolderSource, NpzSource
from explain_attn.explanations import attention_maps, grad_cam
from explain_attn.explanations.export import export_maps, read_maps_folder
from explain_attn.explanations.predict import predict_classes

SHAPE = (16, 16, 3)
COUNT = 7


def _old_fingerprint(images, labels, masks, class_names):
    """The digest as the in-memory loader defined it: whole arrays."""
    digest = hashlib.sha256()
    arrays = [images.astype(np.float32), labels.astype(np.int64)]
    if masks is not None:
        arrays.append(masks.astype(bool))
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(repr(masks is None).encode())
    digest.update("\x00".join(class_names).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A PNG folder: 7 uint8 RGB images of two classes, with masks."""
    root = tmp_path_factory.mktemp("stream_folder")
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (COUNT, *SHAPE), dtype=np.uint8)
    masks = rng.random((COUNT, *SHAPE[:2])) > 0.5
    for index in range(COUNT):
        name = ("a", "b")[index % 2]
        for kind in ("images", "masks"):
            (root / kind / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[index]).save(root / f"images/{name}/{index}.png")
        Image.fromarray(masks[index].astype(np.uint8) * 255).save(
            root / f"masks/{name}/{index}.png"
        )
    return root


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("stream_model") / "attention.keras"
    save_model(
        build_model("small_attention", input_shape=SHAPE, num_classes=2), path
    )
    return path


@pytest.fixture(scope="module")
def model(model_path):
    keras.utils.set_random_seed(5)
    return build_model("small_attention", input_shape=SHAPE, num_classes=2)


def test_fingerprint_fed_in_chunks_equals_the_whole_array_digest():
    rng = np.random.default_rng(0)
    images = rng.random((5, 3, 4, 3), dtype=np.float32)
    labels = np.array([0, 1, 1, 0, 1])
    masks = rng.random((5, 3, 4)) > 0.5
    expected = _old_fingerprint(images, labels, masks, ("x", "y"))
    digest = Fingerprint(5, (3, 4, 3), True, ("x", "y"))
    for start in (0, 2, 3):  # Uneven chunks: 2, 1, 2 images.
        stop = {0: 2, 2: 3, 3: 5}[start]
        digest.update(images[start:stop], labels[start:stop], masks[start:stop])
    assert digest.hexdigest() == expected
    dataset = Dataset(images, labels, masks, ("x", "y"))
    assert dataset.fingerprint() == expected
    unmasked = Dataset(images, labels, None, ("x", "y"))
    assert unmasked.fingerprint() == _old_fingerprint(
        images, labels, None, ("x", "y")
    )


def test_fingerprint_refuses_a_wrong_count():
    digest = Fingerprint(3, (2, 2, 1), False, ("a",))
    digest.update(np.zeros((2, 2, 2, 1)), [0, 0])
    with pytest.raises(ValueError, match="expected 3 images and was fed 2"):
        digest.hexdigest()


def test_folder_source_streams_the_loaded_arrays_in_order(folder):
    loaded = load_dataset(folder)
    source = open_source(folder)
    assert isinstance(source, FolderSource)
    assert len(source) == COUNT and source.image_shape == SHAPE
    assert source.class_names == ("a", "b") and source.has_masks
    chunks = list(source.batches(3))
    assert [len(images) for images, _, _ in chunks] == [3, 3, 1]
    np.testing.assert_array_equal(
        np.concatenate([c[0] for c in chunks]), loaded.images
    )
    np.testing.assert_array_equal(
        np.concatenate([c[1] for c in chunks]), loaded.labels
    )
    np.testing.assert_array_equal(
        np.concatenate([c[2] for c in chunks]), loaded.masks
    )
    expected = _old_fingerprint(
        loaded.images, loaded.labels, loaded.masks, loaded.class_names
    )
    # Computed during the pass above, and again from scratch: the same.
    assert source.fingerprint() == expected == loaded.fingerprint()
    assert open_source(folder).fingerprint() == expected
    # Decoded on tf.data's threads instead: the same chunks and digest.
    piped = open_source(folder)
    piped.parallel_reads = True
    again = list(piped.batches(3))
    for mine, theirs in zip(chunks, again, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert piped.fingerprint() == expected


def test_folder_source_limit_and_size(folder):
    source = open_source(folder, limit=4, image_size=(8, 12))
    assert source.image_shape == (8, 12, 3)
    assert len(source) == 4 and source.labels.tolist() == [0, 0, 1, 1]
    images, _, masks = next(source.batches(10))
    assert images.shape == (4, 8, 12, 3) and masks.shape == (4, 8, 12)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_source_memory_mapped_or_not_gives_the_same(tmp_path, save):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 1])
    masks = rng.random((5, 6, 6)) > 0.5
    path = tmp_path / "data.npz"
    save(path, images=images, labels=labels, masks=masks)
    source = open_source(path)
    assert isinstance(source, NpzSource)
    got = [
        np.concatenate(part) for part in zip(*source.batches(2), strict=True)
    ]
    np.testing.assert_array_equal(got[0], images / np.float32(255))
    np.testing.assert_array_equal(got[1], labels)
    np.testing.assert_array_equal(got[2], masks)
    assert source.fingerprint() == _old_fingerprint(
        images / np.float32(255), labels, masks, ("0", "1")
    )


def test_npz_batches_read_here_equal_the_tf_data_pipeline(tmp_path):
    # Batches are read in the calling thread (no tf.data threads waiting
    # for the GIL beside the report's scoring); the batches, a subset's and
    # the fingerprint equal those of the tf.data pipeline.
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    masks = rng.random((7, 5, 4)) > 0.5
    np.savez(tmp_path / "data.npz", images=images, labels=labels, masks=masks)

    def read(parallel, part=None):
        source = open_source(tmp_path / "data.npz")
        source.parallel_reads = parallel
        source = source if part is None else source.subset(part)
        chunks = list(source.batches(4, start=1))
        assert [len(chunk[0]) for chunk in chunks] == (
            [4, 2] if part is None else [2]
        )
        return [np.concatenate(p) for p in zip(*chunks, strict=True)], source

    here, source = read(False)
    assert source.parallel_reads is False
    piped, _ = read(True)
    for mine, theirs in zip(here, piped, strict=True):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(here[0], images[1:] / np.float32(255))
    np.testing.assert_array_equal(here[2], masks[1:])
    whole = {
        parallel: open_source(tmp_path / "data.npz") for parallel in (0, 1)
    }
    for parallel, each in whole.items():
        each.parallel_reads = bool(parallel)
    assert whole[0].fingerprint() == whole[1].fingerprint()
    subset_here, subset = read(False, [6, 0, 3])
    assert subset.parallel_reads is False
    subset_piped, _ = read(True, [6, 0, 3])
    np.testing.assert_array_equal(subset_here[0], subset_piped[0])
    np.testing.assert_array_equal(
        subset_here[0], images[[0, 3]] / np.float32(255)
    )


def test_npz_source_reads_only_what_it_needs(tmp_path):
    """An uncompressed .npz is read on demand: its images stay on disk."""
    path = tmp_path / "big.npz"
    images = np.arange(64 * 8 * 8 * 3, dtype=np.uint32).reshape(64, 8, 8, 3)
    np.savez(path, images=images.astype(np.uint16), labels=np.zeros(64, int))
    source = open_source(path)
    stored = [
        value
        for value in vars(source).values()
        if hasattr(value, "shape") and value.shape == (64, 8, 8, 3)
    ]
    assert stored and not isinstance(stored[0], np.ndarray)
    np.testing.assert_array_equal(stored[0][5], images[5])
    np.testing.assert_array_equal(stored[0][[9, 2]], images[[9, 2]])
    np.testing.assert_array_equal(stored[0][3:6], images[3:6])
    np.testing.assert_array_equal(np.asarray(stored[0]), images)
    with pytest.raises(IndexError):
        stored[0][64]


def test_every_kind_of_input_gives_the_same_maps(folder, model):
    dataset = load_dataset(folder)
    files = sorted(
        (folder / "images").glob("*/*.png"),
        key=lambda p: (p.parent.name, p.name),
    )
    expected = attention_maps(model, dataset.images, batch_size=3)
    kinds = {
        "source": open_source(folder),
        "dataset": dataset,
        "tf.data unbatched": tf.data.Dataset.from_tensor_slices(
            (dataset.images, dataset.labels)
        ),
        "tf.data batched": tf.data.Dataset.from_tensor_slices(
            dataset.images
        ).batch(2),
        "generator": (dataset.images[i : i + 2] for i in range(0, COUNT, 2)),
        "files": [str(p) for p in files],
    }
    for name, data in kinds.items():
        got = attention_maps(model, data, batch_size=3)
        for path, values in expected.items():
            np.testing.assert_allclose(
                got[path], values, atol=1e-6, err_msg=name
            )
    predicted = predict_classes(model, dataset.images)
    np.testing.assert_array_equal(
        predict_classes(model, open_source(folder), batch_size=2), predicted
    )
    np.testing.assert_allclose(
        grad_cam(model, open_source(folder), batch_size=4),
        grad_cam(model, dataset.images),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        grad_cam(
            model,
            (dataset.images[i : i + 3] for i in range(0, COUNT, 3)),
            class_index=dataset.labels,
        ),
        grad_cam(model, dataset.images, class_index=dataset.labels),
        atol=1e-6,
    )


def test_class_index_of_the_wrong_length_for_a_generator(model, folder):
    images = load_dataset(folder).images
    with pytest.raises(ValueError, match="one entry per image"):
        grad_cam(model, iter([images[:3], images[3:]]), class_index=[0, 1])


def test_maps_folder_equals_the_npz_and_the_functions(
    folder, model_path, tmp_path
):
    npz, directory = tmp_path / "maps.npz", tmp_path / "maps"
    common = ["maps", str(model_path), "--data", str(folder), "--grad-cam"]
    for output in (npz, directory):
        result = CliRunner().invoke(
            main, [*common, "--batch-size", "3", "--output", str(output)]
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == str(output)
        assert "Images are fed to the model as [0, 1]" in result.output
    stored = np.load(npz)
    manifest, arrays = read_maps_folder(directory)
    layers = [str(name) for name in stored["layer_names"]]
    keys = [f"map_{i}" for i in range(len(layers))]
    assert len(layers) == 2  # small_attention's two attention modules.
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [f"{key}.npy" for key in keys]
        + ["grad_cam.npy", "grad_cam_class.npy", "labels.npy"]
        + ["manifest.json", "predictions.npy"]
    )
    assert manifest["count"] == COUNT and manifest["input_scale"] == "unit"
    assert [m["layer"] for m in manifest["maps"][:2]] == layers
    assert [m["method"] for m in manifest["maps"]] == [
        "attention",
        "attention",
        "grad_cam",
        "classes",
    ]
    for key in [*keys, "grad_cam", "grad_cam_class", "labels", "predictions"]:
        np.testing.assert_array_equal(arrays[f"{key}.npy"], stored[key])
    loaded = keras.models.load_model(model_path)
    images = load_dataset(folder).images
    np.testing.assert_array_equal(
        stored["predictions"], predict_classes(loaded, images)
    )
    # Grad-CAM explains the predicted classes (the default --cam-class).
    np.testing.assert_array_equal(
        stored["grad_cam_class"], stored["predictions"]
    )
    expected = attention_maps(loaded, images)
    for key, layer in zip(keys, layers, strict=True):
        np.testing.assert_allclose(stored[key], expected[layer], atol=1e-6)
    np.testing.assert_allclose(
        stored["grad_cam"], grad_cam(loaded, images), atol=1e-6
    )
    # A second run replaces an earlier maps folder.
    result = CliRunner().invoke(
        main, [*common, "--limit", "2", "--output", str(directory)]
    )
    assert result.exit_code == 0, result.output
    assert read_maps_folder(directory)[0]["count"] == 2


def test_an_interrupted_maps_folder_is_not_left_behind(folder, model, tmp_path):
    broken = tmp_path / "broken"
    for path in (folder / "images").rglob("*.png"):
        target = broken / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (broken / "images/b/9.png").write_bytes(b"not a png")  # Read last.
    output = tmp_path / "out" / "maps"
    output.parent.mkdir()
    source = open_source(broken)
    with pytest.raises(ValueError, match="9.png"):
        export_maps(model, source, output, batch_size=2)
    assert list(output.parent.iterdir()) == []


def test_memory_of_the_folder_writer_does_not_hold_the_maps(
    folder, model, tmp_path
):
    """Each batch goes to disk: the writer keeps memory maps, no chunks."""
    output = tmp_path / "maps"
    summary = export_maps(model, open_source(folder), output, batch_size=2)
    manifest, arrays = read_maps_folder(output)
    assert [tuple(m["shape"]) for m in manifest["maps"]] == list(
        summary.values()
    )
    assert all(isinstance(a, np.memmap) for a in arrays.values())
    assert json.loads((output / "manifest.json").read_text())["version"] == 1
