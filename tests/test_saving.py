"""Tests of `save_model` and `load_model`: atomic writes, clear errors."""

import os
import re
import stat
import zipfile

import keras
import numpy as np
import pytest

from explain_attn import SpatialAttention, load_model, save_model
from explain_attn.models.saving import atomic_path


def _tiny_model():
    inputs = keras.Input(shape=(6, 6, 2), name="image")
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = SpatialAttention(3, name="attention")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def model():
    return _tiny_model()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "tiny.keras"
    save_model(model, path)
    return path


def _quoted(path):
    return re.escape(repr(str(path)))


def _listing(folder):
    return sorted(entry.name for entry in folder.iterdir())


# --- save_model -------------------------------------------------------------


def test_save_then_load_gives_identical_outputs(model, saved):
    images = np.random.default_rng(0).random((2, 6, 6, 2)).astype("float32")
    loaded = load_model(saved)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images)),
        keras.ops.convert_to_numpy(model(images)),
    )
    assert isinstance(loaded.get_layer("attention"), SpatialAttention)


def test_save_leaves_only_the_model_file(model, tmp_path):
    save_model(model, tmp_path / "m.keras")
    assert _listing(tmp_path) == ["m.keras"]
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert "config.json" in archive.namelist()


def test_saved_file_has_the_usual_permissions(model, tmp_path):
    # Compare with a file this process creates the ordinary way.
    (tmp_path / "reference").write_bytes(b"")
    save_model(model, tmp_path / "m.keras")
    mode = stat.S_IMODE(os.stat(tmp_path / "m.keras").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "reference").st_mode)


def test_save_overwrites_an_existing_file(model, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"old")
    save_model(model, path)
    assert zipfile.is_zipfile(path)
    assert _listing(tmp_path) == ["m.keras"]


@pytest.mark.parametrize("name", ["m.h5", "m", "m.keras.txt"])
def test_save_refuses_a_wrong_suffix_and_writes_nothing(model, tmp_path, name):
    with pytest.raises(
        ValueError,
        match=rf"file name ends in '\.keras'\. Received: "
        rf"path={_quoted(tmp_path / name)}",
    ):
        save_model(model, tmp_path / name)
    assert _listing(tmp_path) == []


def test_save_refuses_a_missing_directory(model, tmp_path):
    path = tmp_path / "missing" / "m.keras"
    with pytest.raises(
        ValueError,
        match=rf"the directory {_quoted(path.parent)} does not exist",
    ):
        save_model(model, path)
    assert _listing(tmp_path) == []


def test_save_refuses_a_directory_as_target(model, tmp_path):
    (tmp_path / "m.keras").mkdir()
    with pytest.raises(ValueError, match=r"it is a directory"):
        save_model(model, tmp_path / "m.keras")
    assert _listing(tmp_path) == ["m.keras"]
    assert _listing(tmp_path / "m.keras") == []


class _FailingModel:
    """Writes half a file where it is told to, then fails."""

    def save(self, path):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 half written")
        raise OSError("disk full")


def test_failed_save_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"previous model")
    with pytest.raises(OSError, match="disk full"):
        save_model(_FailingModel(), path)
    assert path.read_bytes() == b"previous model"
    assert _listing(tmp_path) == ["m.keras"]


def test_failed_save_leaves_no_file(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        save_model(_FailingModel(), tmp_path / "m.keras")
    assert _listing(tmp_path) == []


def test_unserializable_model_leaves_no_file(tmp_path):
    class Unsaveable(keras.layers.Layer):
        def call(self, inputs):
            return inputs

        def get_config(self):
            raise NotImplementedError("no config")

    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, Unsaveable()(inputs))
    with pytest.raises(NotImplementedError, match="no config"):
        save_model(model, tmp_path / "m.keras")
    assert _listing(tmp_path) == []


def test_atomic_path_keeps_the_suffix_and_hides_the_file(tmp_path):
    target = tmp_path / "report.html"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".html"
        assert tmp_path in temporary.parents
        temporary.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert _listing(tmp_path) == ["report.html"]


# --- load_model: each bad path has its message -----------------------------


def test_load_refuses_a_missing_path(tmp_path):
    path = tmp_path / "absent.keras"
    with pytest.raises(
        ValueError, match=rf"Model file not found: {_quoted(path)}"
    ):
        load_model(path)


def test_load_refuses_a_directory(tmp_path):
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(
        ValueError,
        match=rf"Model path {_quoted(folder)} is a directory .* "
        r"expected a '\.keras' file",
    ):
        load_model(folder)


def test_load_refuses_a_text_file_named_keras(tmp_path):
    path = tmp_path / "x.keras"
    path.write_text("not a model\n")
    with pytest.raises(
        ValueError,
        match=rf"Model file {_quoted(path)} is not a Keras archive "
        r"\(a '\.keras' file is a zip archive\)",
    ):
        load_model(path)


def test_load_refuses_a_wrong_suffix(saved, tmp_path):
    # Even a real model archive: the suffix tells Keras the format.
    path = tmp_path / "model.zip"
    path.write_bytes(saved.read_bytes())
    with pytest.raises(
        ValueError,
        match=rf"Model file {_quoted(path)} has suffix '\.zip'; expected a "
        r"'\.keras' file",
    ):
        load_model(path)


def test_load_refuses_a_truncated_archive(saved, tmp_path):
    data = saved.read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ValueError,
        match=rf"Model file {_quoted(path)} is not a Keras archive .* "
        r"corrupt",
    ):
        load_model(path)


def test_load_refuses_an_archive_with_corrupt_weights(saved, tmp_path):
    path = tmp_path / "corrupt.keras"
    with (
        zipfile.ZipFile(saved) as source,
        zipfile.ZipFile(path, "w") as target,
    ):
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".h5"):
                data = data[: len(data) // 2]
            target.writestr(item, data)
    with pytest.raises(
        ValueError,
        match=rf"Model file {_quoted(path)} is corrupt or truncated \(.*\)\. "
        r"Re-save the model",
    ):
        load_model(path)


def test_load_refuses_a_zip_without_keras_contents(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(
        ValueError,
        match=rf"Model file {_quoted(path)} is a zip archive without the "
        r"Keras model configuration \('config\.json'\)",
    ):
        load_model(path)


def test_load_refuses_an_h5_that_is_not_hdf5(tmp_path):
    path = tmp_path / "legacy.h5"
    path.write_text("not hdf5")
    with pytest.raises(ValueError, match=rf"{_quoted(path)}"):
        load_model(path)


@pytest.fixture
def lambda_model_path(tmp_path):
    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0 + 1.0, name="affine")(
        inputs
    )
    path = tmp_path / "lambda.keras"
    save_model(keras.Model(inputs, outputs), path)
    return path


def test_safe_mode_refuses_a_lambda_layer(lambda_model_path):
    with pytest.raises(
        ValueError,
        match=rf"Model {_quoted(lambda_model_path)} contains code .* "
        r"pass --unsafe-load \(API: safe_mode=False\)",
    ):
        load_model(lambda_model_path)


def test_unsafe_mode_loads_a_lambda_layer(lambda_model_path):
    loaded = load_model(lambda_model_path, safe_mode=False)
    outputs = keras.ops.convert_to_numpy(loaded(np.array([[0.0, 1.0, -2.0]])))
    np.testing.assert_allclose(outputs, [[1.0, 3.0, -3.0]])
