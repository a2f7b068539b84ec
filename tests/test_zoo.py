"""The test zoo: attention found, maps read, reports rendered, from the CLI.

Models as public Keras code builds them (`zoo_models`), at tiny sizes.
"""

import collections
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn.attention.discovery import discover_modules
from explain_attn.cli import main
from explain_attn.explanations.attention import (
    attention_maps,
    channel_attention_weights,
)
from explain_attn.models.preprocessing import describe_input

sys.path.insert(0, str(Path(__file__).parent))
import zoo_models  # noqa: E402

EXPECTED = {
    "mobilenet_v2_cbam": {"channel_gate": 1, "gate": 1},
    "mobilenet_v3_small": {"channel_gate": 9},
    "efficientnet_b0": {"channel_gate": 16},
    "resnet50_ops_cbam": {"channel_gate": 1, "gate": 1},
    "coordinate_attention": {"axis": 1},
    "attention_unet_gate": {"gate": 1},
    "hybrid_mha": {"mha": 1},
    "rescaling_model": {"gate": 1},
    "grayscale_model": {"gate": 1},
    "bam_gate": {"gate": 1},
    "small_ops_cbam": {"channel_gate": 1, "gate": 1},
}
"""Modules by kind that discovery must find in each zoo model."""


@pytest.fixture(scope="module")
def zoo():
    return {name: getattr(zoo_models, name)() for name in EXPECTED}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_discovery_counts_modules_by_kind(zoo, name):
    found = collections.Counter(
        m.kind.name for m in discover_modules(zoo[name])
    )
    assert dict(found) == EXPECTED[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_module_gives_a_map_or_channel_weights(zoo, name):
    model = zoo[name]
    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    modules = discover_modules(model)
    spatial = [m for m in modules if m.kind.spatial]
    if spatial:
        maps = attention_maps(model, images)
        for module in spatial:
            assert maps[module.path].shape == (2, *module.shape[:2])
            assert np.all(np.isfinite(maps[module.path]))
    for module in [m for m in modules if not m.kind.spatial][:2]:
        weights = channel_attention_weights(model, images, module.path)
        assert weights.shape == (2, module.shape[-1])
        low, high = module.value_range.low, module.value_range.high
        assert np.all((weights >= low) & (weights <= high))


def test_hard_sigmoid_gates_are_recorded_closed(zoo):
    ranges = {
        str(m.value_range) for m in discover_modules(zoo["mobilenet_v3_small"])
    }
    assert ranges == {"[0, 1]"}
    bam = discover_modules(zoo["bam_gate"])[0]
    assert str(bam.value_range) == "(1, 2)"


def test_input_expectations(zoo):
    assert describe_input(zoo["rescaling_model"]).scale == "byte"
    assert describe_input(zoo["efficientnet_b0"]).scale == "byte"
    assert describe_input(zoo["mobilenet_v3_small"]).scale == "byte"
    assert describe_input(zoo["mobilenet_v2_cbam"]).scale is None
    assert describe_input(zoo["grayscale_model"]).channels == 1


def _save_zoo(name, folder):
    """Saves a zoo model, a matching baseline and 8 images as .npz."""
    model = getattr(zoo_models, name)()
    height, width, channels = model.inputs[0].shape[1:]
    model.save(folder / f"{name}.keras")
    zoo_models.baseline(height, channels).save(folder / "baseline.keras")
    rng = np.random.default_rng(1)
    np.savez(
        folder / "data.npz",
        images=rng.random((8, height, width, channels), dtype=np.float32),
        labels=np.arange(8) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    return folder / f"{name}.keras"


REPORTS = [
    pytest.param("coordinate_attention", [], id="coordinate"),
    pytest.param("hybrid_mha", ["--no-faithfulness"], id="mha"),
    pytest.param("small_ops_cbam", [], id="ops-cbam-with-faithfulness"),
    *(
        pytest.param(name, ["--no-faithfulness"], marks=pytest.mark.slow)
        for name in (
            "efficientnet_b0",
            "mobilenet_v3_small",
            "mobilenet_v2_cbam",
            "resnet50_ops_cbam",
            "attention_unet_gate",
            "rescaling_model",
            "bam_gate",
        )
    ),
    ("grayscale_model", ["--no-faithfulness"]),
]


@pytest.mark.parametrize(("name", "options"), REPORTS)
def test_report_from_the_cli(name, options, tmp_path):
    model = _save_zoo(name, tmp_path)
    output = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        [
            "report", "--data", str(tmp_path / "data.npz"),
            "--attention-model", str(model),
            "--baseline-model", str(tmp_path / "baseline.keras"),
            "--num-examples", "2", "--output", str(output), *options,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = output.read_text(encoding="utf-8")
    kinds = EXPECTED[name]
    assert ('id="channels"' in html) == ("channel_gate" in kinds)
    if set(kinds) == {"channel_gate"}:
        # No fake map of a channel gate is scored as a spatial map.
        assert "se_expand</code></td>" not in html.split('id="channels"')[0]


def test_maps_and_layers_from_the_cli_on_a_channel_only_model(tmp_path):
    model = _save_zoo("mobilenet_v3_small", tmp_path)
    result = CliRunner().invoke(main, ["layers", str(model)])
    assert result.exit_code == 0, result.output
    assert "Attention modules: 9 (9 channel_gate)" in result.output
    assert "scale byte" in result.output
    output = tmp_path / "maps.npz"
    result = CliRunner().invoke(
        main,
        [
            "maps", str(model), "--data", str(tmp_path / "data.npz"),
            "--grad-cam", "--cam-class", "true", "--output", str(output),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(output) as arrays:
        assert len(arrays["channel_layer_names"]) == 9
        assert arrays["channel_0"].shape == (8, 16)
        assert len(arrays["layer_names"]) == 0
        assert arrays["grad_cam"].shape[0] == 8
        np.testing.assert_array_equal(
            arrays["grad_cam_class"], np.arange(8) % 3
        )


def test_grad_cam_without_attention_and_a_chosen_class(tmp_path):
    _save_zoo("coordinate_attention", tmp_path)
    output = tmp_path / "maps.npz"
    result = CliRunner().invoke(
        main,
        [
            "maps", str(tmp_path / "baseline.keras"),
            "--data", str(tmp_path / "data.npz"), "--grad-cam",
            "--cam-layer", "conv1", "--cam-class", "2",
            "--output", str(output),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(output) as arrays:
        assert arrays["grad_cam"].shape == (8, 16, 16)
        assert set(arrays["grad_cam_class"].tolist()) == {2}


CUSTOM = """
import keras


@keras.saving.register_keras_serializable(package="zoo_user")
class Twice(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs


def build():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = Twice(name="twice")(x)
    gate = keras.layers.Conv2D(1, 1, activation="sigmoid", name="gate")(x)
    x = keras.layers.Multiply()([x, gate])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
"""


def test_a_model_with_the_users_custom_layer(tmp_path):
    module = tmp_path / "zoo_user_layers.py"
    module.write_text(CUSTOM)
    from explain_attn.models.user_code import import_modules

    (user,) = import_modules([str(module)])
    model = user.build()
    model.save(tmp_path / "custom.keras")
    model.save_weights(tmp_path / "custom.weights.h5")
    for arguments in (
        [str(tmp_path / "custom.keras"), "--import", str(module)],
        [str(tmp_path / "custom.weights.h5"), "--model-factory",
         f"{module}:build"],
    ):  # fmt: skip
        result = CliRunner().invoke(main, ["layers", *arguments])
        assert result.exit_code == 0, result.output
        assert "Attention modules: 1 (1 gate)" in result.output
