"""Bad input around the user's models: custom classes, factories, CAM
options. Each case: one line on stderr, exit code 2, nothing written."""

import re
import sys

import keras
import numpy as np
import pytest
from catalogue import assert_bad_input

CUSTOM = """
import keras


@keras.saving.register_keras_serializable(package="bad_input_user")
class Twice(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs


def build():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = Twice(name="twice")(x)
    x = keras.layers.Conv2D(4, 8, name="tiny")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def not_a_model():
    return 3


@keras.saving.register_keras_serializable(package="bad_input_user")
class NoScores(keras.layers.MultiHeadAttention):
    # Attention whose scores cannot be read (a library's own subclass).

    def call(self, query, value, key=None, **kwargs):
        if kwargs.pop("return_attention_scores", False):
            raise NotImplementedError("this layer keeps its scores")
        return super().call(query, value, key, **kwargs)


def build_mha():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    tokens = keras.layers.Reshape((16, 4))(x)
    x = NoScores(2, 4, name="mha")(tokens, tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
"""


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_models")
    module = folder / "bad_input_user.py"
    module.write_text(CUSTOM)
    from explain_attn.models.user_code import import_modules

    (user,) = import_modules([str(module)])
    model = user.build()
    model.save(folder / "custom.keras")
    model.save_weights(folder / "custom.weights.h5")
    user.build_mha().save(folder / "mha.keras")
    other = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)]
    )
    other.save_weights(folder / "other.weights.h5")
    np.savez(
        folder / "data.npz",
        images=np.zeros((4, 8, 8, 3), np.float32),
        labels=np.arange(4) % 3,
    )
    return folder, module


def _cases(folder, module, output):
    keras_file = str(folder / "custom.keras")
    weights = str(folder / "custom.weights.h5")
    data = str(folder / "data.npz")
    maps = ["maps", keras_file, "--import", str(module), "--data", data,
            "--output", str(output)]  # fmt: skip
    return [
        (["layers", weights], "holds weights only"),
        (
            ["layers", weights, "--model-factory", f"{module}:not_a_model"],
            "returned int, not a keras.Model",
        ),  # fmt: skip
        (
            [
                "layers",
                str(folder / "other.weights.h5"),
                "--model-factory",
                f"{module}:build",
            ],
            "do not fit the model",
        ),  # fmt: skip
        (
            [*maps, "--grad-cam", "--cam-class", "most"],
            "--cam-class must be 'predicted', 'true' or a class index",
        ),
        (
            [*maps, "--grad-cam", "--cam-class", "7"],
            "--cam-class 7 is not a class of the model",
        ),
        (
            [*maps, "--grad-cam", "--cam-layer", "tiny"],
            "Choose a layer whose output is at least 2×2",
        ),
        ([*maps, "--method", "attention"], "'attention' is not a CAM method"),
        (
            [*maps[:1], str(folder / "mha.keras"), *maps[2:]],
            "Could not read the attention scores of MultiHeadAttention "
            "layer 'mha' with Keras",
        ),
    ]


@pytest.mark.parametrize("index", range(8))
def test_bad_input_around_user_models(user_files, index, tmp_path):
    folder, module = user_files
    output = tmp_path / "out.npz"
    arguments, message = _cases(folder, module, output)[index]
    assert_bad_input(arguments, message, output, tmp_path)


def test_the_missing_custom_class_is_named(user_files, monkeypatch):
    folder, _ = user_files
    from explain_attn.models.saving import load_model

    # As in a new process that did not import the user's module: neither
    # registered nor importable (Keras 3.5 imports a class's module itself).
    registered = keras.saving.get_custom_objects()["bad_input_user>Twice"]
    monkeypatch.delitem(
        keras.saving.get_custom_objects(), "bad_input_user>Twice"
    )
    monkeypatch.delitem(sys.modules, registered.__module__)
    expected = (
        "uses a custom layer or function, 'bad_input_user>Twice' "
        f"(module '{registered.__module__}'), that is not registered"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_model(folder / "custom.keras")
