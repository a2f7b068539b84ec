"""Tests of the registered architectures: sizes, names, save and load."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import explain_attn
from explain_attn import ARCHITECTURES, SpatialAttention, build_model

# Small images and few classes keep the save/load checks fast.
SMALL_SHAPE = (12, 12, 3)
SMALL_CLASSES = 3

# The tutorial's models at its 32x32x3, 10-class setting.
TUTORIAL_PARAMETERS = {
    "baseline": 20_042,
    "attention": 77_037,
    "residual": 39_469,
}

ATTENTION_LAYERS = {
    "baseline": [],
    "attention": ["attention"],
    "attention_ablation": [],
    "residual": ["res_attention"],
    "small_convnet": [],
    "small_attention": ["block2_attention", "block3_attention"],
}


@pytest.fixture(scope="module")
def tutorial_models():
    """Every architecture once, at 32x32x3 and 10 classes."""
    return {name: build_model(name) for name in ARCHITECTURES}


@pytest.fixture(scope="module")
def small_models():
    """Every architecture once, at a small input and 3 classes."""
    return {
        name: build_model(
            name, input_shape=SMALL_SHAPE, num_classes=SMALL_CLASSES
        )
        for name in ARCHITECTURES
    }


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, *SMALL_SHAPE)).astype("float32")


@pytest.fixture(scope="module")
def saved_models(small_models, tmp_path_factory):
    """Every small architecture saved once with `explain_attn.save_model`."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, model in small_models.items():
        paths[name] = folder / f"{name}.keras"
        explain_attn.save_model(model, paths[name])
    return paths


def _predict(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


def test_registry_lists_every_architecture_with_a_description():
    assert set(ARCHITECTURES) == set(ATTENTION_LAYERS)
    for name, description in ARCHITECTURES.items():
        assert isinstance(description, str) and description.strip(), name


@pytest.mark.parametrize("name", sorted(TUTORIAL_PARAMETERS))
def test_tutorial_models_have_the_tutorial_parameter_counts(
    name, tutorial_models
):
    assert tutorial_models[name].count_params() == TUTORIAL_PARAMETERS[name]


def test_ablation_is_the_attention_model_without_its_attention_layer(
    tutorial_models,
):
    attention = tutorial_models["attention"]
    ablation = tutorial_models["attention_ablation"]
    # A 7x7 convolution from 2 channels to 1, with bias: 7 * 7 * 2 + 1.
    assert attention.count_params() - ablation.count_params() == 99
    assert ablation.count_params() == 76_938
    without = [
        layer.name for layer in attention.layers if layer.name != "attention"
    ]
    assert [layer.name for layer in ablation.layers] == without


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_model_is_named_after_its_architecture(name, tutorial_models):
    model = tutorial_models[name]
    assert model.name == name
    assert tuple(model.input.shape) == (None, 32, 32, 3)
    assert tuple(model.output.shape) == (None, 10)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_layer_names_are_stable_across_builds(name, tutorial_models):
    # A second build in the same session would change auto-numbered names.
    first = [layer.name for layer in tutorial_models[name].layers]
    second = [layer.name for layer in build_model(name).layers]
    assert first == second
    assert first[0] == "image"
    assert first[-2:] == ["gap", "predictions"]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_documented_attention_layers_exist(name, tutorial_models):
    model = tutorial_models[name]
    found = [
        layer.name
        for layer in model.layers
        if isinstance(layer, SpatialAttention)
    ]
    assert found == ATTENTION_LAYERS[name]
    for layer_name in ATTENTION_LAYERS[name]:
        layer = model.get_layer(layer_name)
        assert len(layer.output.shape) == 4
        if name in TUTORIAL_PARAMETERS:  # The tutorial's 7x7 map.
            assert layer.kernel_size == 7


def test_tutorial_layer_order(tutorial_models):
    names = {
        name: [layer.name for layer in model.layers]
        for name, model in tutorial_models.items()
    }
    assert names["baseline"] == [
        "image",
        "conv1",
        "pool1",
        "conv2",
        "gap",
        "predictions",
    ]
    assert names["attention"] == [
        "image",
        "conv1",
        "attention",
        "pool1",
        "conv2",
        "gap",
        "predictions",
    ]
    assert names["residual"] == [
        "image",
        "conv_stem",
        "res_conv",
        "res_attention",
        "res_add",
        "gap",
        "predictions",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"architecture": "resnet"},
            r"Unknown architecture\. Received: architecture='resnet'\. "
            r"Expected one of: attention, attention_ablation, baseline",
        ),
        (
            {"architecture": "baseline", "input_shape": (32, 32)},
            r"`input_shape` must be \(height, width, channels\) .* "
            r"Received: input_shape=\(32, 32\)",
        ),
        (
            {"architecture": "baseline", "input_shape": (32, 0, 3)},
            r"Received: input_shape=\(32, 0, 3\)",
        ),
        (
            {"architecture": "baseline", "input_shape": (32.0, 32, 3)},
            r"Received: input_shape=\(32\.0, 32, 3\)",
        ),
        (
            {"architecture": "baseline", "num_classes": 1},
            r"`num_classes` must be an integer of at least 2\. "
            r"Received: num_classes=1",
        ),
        (
            {"architecture": "baseline", "num_classes": True},
            r"Received: num_classes=True",
        ),
        (
            {"architecture": "baseline", "num_classes": 10.0},
            r"Received: num_classes=10\.0",
        ),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    architecture = kwargs.pop("architecture")
    with pytest.raises(ValueError, match=match):
        build_model(architecture, **kwargs)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_save_load_round_trip_gives_identical_outputs(
    name, small_models, saved_models, images
):
    model = small_models[name]
    loaded = explain_attn.load_model(saved_models[name])

    assert loaded.name == name
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
    for saved, restored in zip(
        model.get_weights(), loaded.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(restored, saved)
    np.testing.assert_array_equal(
        _predict(loaded, images), _predict(model, images)
    )
    for layer_name in ATTENTION_LAYERS[name]:
        assert isinstance(loaded.get_layer(layer_name), SpatialAttention)


def test_models_load_in_a_fresh_process(
    small_models, saved_models, images, tmp_path
):
    """Only ``import explain_attn`` is needed to load every architecture."""
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path

        import numpy as np

        import explain_attn

        folder = Path(sys.argv[1])
        images = np.load(folder / "images.npy")
        for path in sys.argv[2:]:
            model = explain_attn.load_model(path)
            outputs = np.asarray(model(images, training=False))
            np.save(folder / (Path(path).stem + ".npy"), outputs)
        """
    )
    names = sorted(saved_models)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path),
            *(str(saved_models[name]) for name in names),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in names:
        np.testing.assert_allclose(
            np.load(tmp_path / f"{name}.npy"),
            _predict(small_models[name], images),
            rtol=1e-6,
            atol=1e-7,
            err_msg=name,
        )
