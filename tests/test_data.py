"""Dataset loaders on real image files, and every bad-input message."""

import numpy as np
import pytest
from PIL import Image

from explain_attn import data
from explain_attn.data import Dataset, load_dataset, synthetic


def _rgb(seed, size=8):
    return np.random.default_rng(seed).integers(
        0, 256, (size, size, 3), dtype=np.uint8
    )


def _square_mask(size=8, start=2, stop=6):
    mask = np.zeros((size, size), np.uint8)
    mask[start:stop, start:stop] = 255
    return mask


def _write_folder(root, *, per_class=3, classes=("b_dog", "a_cat")):
    """A folder of PNGs with masks; returns {(class, name): (rgb, mask)}."""
    written = {}
    for offset, class_name in enumerate(classes):
        (root / "images" / class_name).mkdir(parents=True)
        (root / "masks" / class_name).mkdir(parents=True)
        for index in range(per_class):
            rgb = _rgb(10 * offset + index)
            mask = _square_mask(start=index, stop=index + 4)
            name = f"img{index}"
            Image.fromarray(rgb).save(
                root / "images" / class_name / f"{name}.png"
            )
            Image.fromarray(mask).save(
                root / "masks" / class_name / f"{name}.png"
            )
            written[(class_name, name)] = (rgb, mask)
    return written


def test_folder_layout_with_masks_is_read_exactly(tmp_path):
    written = _write_folder(tmp_path)
    dataset = load_dataset(tmp_path)
    assert dataset.class_names == ("a_cat", "b_dog")  # sorted folder names
    assert dataset.images.shape == (6, 8, 8, 3)
    assert dataset.images.dtype == np.float32
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert dataset.masks.dtype == bool
    assert dataset.name == tmp_path.name
    rgb, mask = written[("b_dog", "img1")]
    np.testing.assert_array_equal(dataset.images[4], rgb / np.float32(255))
    np.testing.assert_array_equal(dataset.masks[4], mask > 0)


def test_folder_without_masks_gives_none(tmp_path):
    _write_folder(tmp_path)
    for path in sorted((tmp_path / "masks").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "masks").rmdir()
    dataset = load_dataset(tmp_path)
    assert dataset.masks is None and len(dataset) == 6


def test_grayscale_rgba_jpeg_and_bmp_become_rgb(tmp_path):
    folder = tmp_path / "images" / "things"
    folder.mkdir(parents=True)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    rgba = np.dstack([_rgb(1), np.full((8, 8), 7, np.uint8)])
    smooth = np.full((8, 8, 3), (200, 100, 50), np.uint8)
    Image.fromarray(gray).save(folder / "a_gray.png")
    Image.fromarray(rgba, "RGBA").save(folder / "b_rgba.png")
    Image.fromarray(smooth).save(folder / "c_photo.jpg", quality=95)
    Image.fromarray(_rgb(2)).save(folder / "d_bitmap.bmp")
    with pytest.warns(data.AlphaDroppedWarning, match="1 of 4 image"):
        dataset = load_dataset(tmp_path)
    images = dataset.images
    assert images.shape == (4, 8, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(
            images[0, ..., channel], gray / np.float32(255)
        )
    np.testing.assert_array_equal(images[1], rgba[..., :3] / np.float32(255))
    np.testing.assert_allclose(images[2], smooth / 255.0, atol=3 / 255)
    np.testing.assert_array_equal(images[3], _rgb(2) / np.float32(255))


def test_resize_is_anti_aliased_and_masks_nearest(tmp_path):
    folder = tmp_path / "images" / "grid"
    masks = tmp_path / "masks" / "grid"
    folder.mkdir(parents=True)
    masks.mkdir(parents=True)
    checkerboard = (np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(checkerboard).save(folder / "a.png")
    left_half = np.zeros((16, 16), np.uint8)
    left_half[:, :8] = 1
    Image.fromarray(left_half).save(masks / "a.png")
    dataset = load_dataset(tmp_path, image_size=(8, 4))
    assert dataset.images.shape == (1, 8, 4, 3)
    # Anti-aliasing averages the checkerboard to grey; plain interpolation
    # would sample black or white pixels.
    np.testing.assert_allclose(dataset.images, 0.5, atol=0.1)
    expected = np.zeros((8, 4), bool)
    expected[:, :2] = True
    np.testing.assert_array_equal(dataset.masks[0], expected)


def test_different_sizes_need_image_size(tmp_path):
    folder = tmp_path / "images" / "c"
    folder.mkdir(parents=True)
    Image.fromarray(_rgb(0, 8)).save(folder / "a.png")
    Image.fromarray(_rgb(1, 12)).save(folder / "b.png")
    with pytest.raises(ValueError, match="different sizes.*image_size"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, image_size=6).images.shape == (2, 6, 6, 3)


def test_limit_takes_classes_in_turn(tmp_path):
    _write_folder(tmp_path, per_class=3)
    dataset = load_dataset(tmp_path, limit=4)
    assert dataset.labels.tolist() == [0, 0, 1, 1]
    full = load_dataset(tmp_path)
    np.testing.assert_array_equal(dataset.images[2], full.images[3])


def test_train_and_test_subfolders_are_splits(tmp_path):
    _write_folder(tmp_path / "train", per_class=3)
    _write_folder(tmp_path / "test", per_class=1)
    assert len(load_dataset(tmp_path, split="train")) == 6
    assert len(load_dataset(tmp_path, split="test")) == 2
    train, test = data.train_test_datasets(tmp_path)
    assert (len(train), len(test)) == (6, 2)


def test_npz_scaling_grayscale_masks_and_default_class_names(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    masks = np.zeros((5, 4, 4), np.uint8)
    masks[:, 1] = 9
    path = tmp_path / "set.npz"
    np.savez(path, images=images, labels=np.array([0, 2, 1, 2, 0]), masks=masks)
    dataset = load_dataset(path)
    assert dataset.images.shape == (5, 4, 4, 3)
    np.testing.assert_array_equal(
        dataset.images[..., 1], images / np.float32(255)
    )
    assert dataset.class_names == ("0", "1", "2")
    assert dataset.masks[:, 1].all() and not dataset.masks[:, 0].any()
    assert dataset.name == "set"


def test_npz_float_images_and_class_names(tmp_path):
    images = np.random.default_rng(0).random((4, 6, 6, 3))
    path = tmp_path / "floats.npz"
    np.savez(
        path,
        images=images,
        labels=np.array([[1], [0], [1], [0]]),
        class_names=np.array(["no", "yes"]),
    )
    dataset = load_dataset(path, image_size=3)
    assert dataset.class_names == ("no", "yes")
    assert dataset.labels.tolist() == [1, 0, 1, 0]
    assert dataset.images.shape == (4, 3, 3, 3) and dataset.masks is None
    np.testing.assert_allclose(
        dataset.images[0, 0, 0], images[0, :2, :2].mean(axis=(0, 1)), atol=0.2
    )


def test_sample_test_split_reads_the_committed_files():
    dataset = load_dataset("sample")
    assert dataset.class_names == synthetic.CLASS_NAMES
    assert dataset.images.shape == (1000, 32, 32, 3)
    assert dataset.masks.shape == (1000, 32, 32)
    assert np.bincount(dataset.labels).tolist() == [250] * 4
    assert dataset.name == "sample"


def test_sample_regenerates_when_the_folder_is_missing(monkeypatch):
    from_files = load_dataset("sample", limit=12)
    monkeypatch.setattr(data, "sample_data_directory", lambda: None)
    regenerated = load_dataset("sample", limit=12)
    assert regenerated.fingerprint() == from_files.fingerprint()


def test_sample_train_split_is_the_generator_stream():
    dataset = load_dataset("sample", split="train", limit=10, image_size=16)
    images, labels, masks = synthetic.generate(10, split="train", seed=0)
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.images.shape == (10, 16, 16, 3)
    assert dataset.masks.shape == (10, 16, 16)
    full = load_dataset("sample", split="train", limit=10)
    np.testing.assert_array_equal(full.images, images / np.float32(255))
    np.testing.assert_array_equal(full.masks, masks)


def test_cifar10_offline_is_a_clear_value_error(monkeypatch):
    import keras

    def offline():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(ValueError, match="CIFAR-10.*internet"):
        load_dataset("cifar10")


def test_cifar10_is_loaded_through_keras(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    fake = (
        rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
        np.arange(6).reshape(6, 1),
    )
    monkeypatch.setattr(
        keras.datasets.cifar10, "load_data", lambda: (fake, fake)
    )
    dataset = load_dataset("cifar10", split="train", limit=3)
    assert dataset.class_names[0] == "airplane" and dataset.masks is None
    assert dataset.labels.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(dataset.images, fake[0][:3] / np.float32(255))


# ------------------------------------------------------------ bad input


def _folder_case(tmp_path, case):
    """Builds the broken folder of ``case``; returns the path to load."""
    if case == "missing":
        return tmp_path / "nowhere"
    if case == "empty":
        return tmp_path
    if case == "no_class_folders":
        Image.fromarray(_rgb(0)).save(tmp_path / "flat.png")
        return tmp_path
    _write_folder(tmp_path)
    masks = tmp_path / "masks"
    if case == "corrupt":
        (tmp_path / "images" / "a_cat" / "img1.png").write_bytes(b"not png")
    elif case == "unsupported":
        (tmp_path / "images" / "a_cat" / "notes.txt").write_text("hello")
    elif case == "image_without_mask":
        (masks / "a_cat" / "img0.png").unlink()
        (masks / "b_dog" / "img2.png").unlink()
    elif case == "mask_without_image":
        Image.fromarray(_square_mask()).save(masks / "a_cat" / "extra.png")
    elif case == "mask_size":
        Image.fromarray(_square_mask(size=5, stop=3)).save(
            masks / "b_dog" / "img2.png"
        )
    elif case == "empty_class":
        (tmp_path / "images" / "c_empty").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"Data not found: '.*nowhere'.*Expected 'sample'"),
        ("empty", r"is empty\. Put images in .*images/<class>"),
        ("no_class_folders", r"No class folders in .*images'.*one folder"),
        ("corrupt", r"Cannot read image '.*a_cat/img1\.png'.*Replace"),
        ("unsupported", r"Unsupported file '.*notes\.txt'.*\.png"),
        (
            "image_without_mask",
            r"2 image\(s\) have no mask .*e\.g\. a_cat/img0, b_dog/img2",
        ),
        ("mask_without_image", r"1 mask\(s\) .* no image, e\.g\. a_cat/extra"),
        ("mask_size", r"Mask '.*img2\.png' is 5x5 but its image .* is 8x8"),
        ("empty_class", r"Class folder '.*c_empty' has no images"),
    ],
)
def test_bad_folders_name_the_problem_and_the_fix(tmp_path, case, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(_folder_case(tmp_path, case))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"labels": np.zeros(2, int)}, r"lacks the array\(s\) images"),
        (
            {"images": np.zeros((3, 4, 4)), "labels": np.zeros(2, int)},
            r"different lengths \(images=3, labels=2\)",
        ),
        (
            {
                "images": np.zeros((2, 4, 4)),
                "labels": np.zeros(2, int),
                "masks": np.zeros((1, 4, 4)),
            },
            r"different lengths \(images=2, labels=2, masks=1\)",
        ),
        (
            {
                "images": np.zeros((2, 4, 4)),
                "labels": np.array([0, 2]),
                "class_names": np.array(["a", "b"]),
            },
            r"Labels in .* must be in \[0, 1\].*\[2\]",
        ),
        (
            {"images": np.full((2, 4, 4), np.nan), "labels": np.zeros(2, int)},
            "contain NaN",
        ),
        (
            {"images": np.full((2, 4, 4), 2.0), "labels": np.zeros(2, int)},
            r"must lie in \[0, 1\].*max=2",
        ),
        (
            {
                "images": np.zeros((2, 4, 4)),
                "labels": np.zeros(2, int),
                "masks": np.zeros((2, 3, 3)),
            },
            r"masks.*must have shape \(2, 4, 4\)",
        ),
        (
            {"images": np.zeros((2, 4, 4)), "labels": np.array([0.0, 1.0])},
            "must be integers",
        ),
    ],
)
def test_bad_npz_files_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(path)


def test_corrupt_npz_and_unknown_file_type(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"Cannot read '.*broken\.npz'"):
        load_dataset(path)
    other = tmp_path / "data.csv"
    other.write_text("a,b")
    with pytest.raises(ValueError, match=r"Unsupported data file .*data\.csv"):
        load_dataset(other)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, r"Unknown split.*'validation'"),
        ({"limit": 0}, r"`limit` must be a positive integer.*limit=0"),
        ({"limit": -3}, r"limit=-3"),
        ({"image_size": (4, 0)}, r"`image_size`.*\(4, 0\)"),
        ({"image_size": "big"}, r"image_size='big'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("sample", **kwargs)


# --------------------------------------------------------- Dataset value


def _small_dataset(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(
        rng.random((count, 4, 4, 3), dtype=np.float32),
        np.arange(count) % 2,
        rng.random((count, 4, 4)) > 0.5,
        ("a", "b"),
        "small",
    )


def test_fingerprint_is_stable_and_sensitive():
    first, second = _small_dataset(), _small_dataset()
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64
    renamed = Dataset(
        first.images, first.labels, first.masks, ("a", "c"), "small"
    )
    nudged_images = first.images.copy()
    nudged_images[0, 0, 0, 0] += 1e-3
    nudged = Dataset(
        nudged_images, first.labels, first.masks, ("a", "b"), "small"
    )
    unmasked = Dataset(first.images, first.labels, None, ("a", "b"), "x")
    digests = {
        first.fingerprint(),
        renamed.fingerprint(),
        nudged.fingerprint(),
        unmasked.fingerprint(),
    }
    assert len(digests) == 4


def test_dataset_does_not_change_the_callers_arrays():
    images = np.random.default_rng(0).random((3, 4, 4, 3))  # float64
    labels = np.array([0, 1, 0], np.int32)
    before = images.copy(), labels.copy()
    dataset = Dataset(images, labels, None, ("a", "b"))
    assert dataset.images.dtype == np.float32
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(images, before[0])
    np.testing.assert_array_equal(labels, before[1])
    assert images.dtype == np.float64 and images.flags.writeable


def test_dataset_validates_its_arrays():
    images = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\).*\(2, 4, 4\)"):
        Dataset(images[..., 0], [0, 1], None, ("a", "b"))
    with pytest.raises(ValueError, match=r"labels.*2 integers"):
        Dataset(images, [0, 1, 1], None, ("a", "b"))
    with pytest.raises(ValueError, match=r"masks.*\(2, 4, 4\)"):
        Dataset(images, [0, 1], np.zeros((2, 3, 3)), ("a", "b"))


def test_split_dataset_is_stratified_disjoint_and_seeded():
    dataset = _small_dataset(count=20)
    train, test = data.split_dataset(dataset, test_fraction=0.2, seed=1)
    assert (len(train), len(test)) == (16, 4)
    assert np.bincount(test.labels).tolist() == [2, 2]
    combined = np.concatenate([train.images, test.images])
    assert len(np.unique(combined.reshape(20, -1), axis=0)) == 20
    again = data.split_dataset(dataset, test_fraction=0.2, seed=1)[1]
    assert again.fingerprint() == test.fingerprint()
    with pytest.raises(ValueError, match="test_fraction"):
        data.split_dataset(dataset, test_fraction=1.0)


def test_tf_dataset_batches_and_seeded_shuffle():
    dataset = _small_dataset(count=10)
    batches = list(data.tf_dataset(dataset, batch_size=4))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[0][0].numpy(), dataset.images[:4])

    def order(seed):
        pipeline = data.tf_dataset(
            dataset, batch_size=10, shuffle=True, seed=seed
        )
        return [images.numpy()[:, 0, 0, 0].tolist() for images, _ in pipeline][
            0
        ]

    assert order(3) == order(3)
    assert sorted(order(3)) == sorted(dataset.images[:, 0, 0, 0].tolist())
    with pytest.raises(ValueError, match="batch_size=0"):
        data.tf_dataset(dataset, batch_size=0)
