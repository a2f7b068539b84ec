"""The test zoo: attention found, maps read, reports rendered, from the CLI.

Models as public Keras code builds them (`zoo_models`), at tiny sizes.
"""

import collections
import json
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn.attention.discovery import discover_modules
from explain_attn.cli import main
from explain_attn.explanations.attention import (
    attention_maps,
    channel_attention_weights,
)
from explain_attn.graph import flat_graph
from explain_attn.metrics import entropy
from explain_attn.models.lookup import cam_candidates, default_cam_layer
from explain_attn.models.preprocessing import describe_input
from explain_attn.models.saving import load_model
from explain_attn.report.schema import undeclared, validate

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
    "non_local_block": {"dot_product": 1},
    "gcnet_block": {"pooling": 1},
    "attention_augmented": {"dot_product": 1},
    "mobilevit_block": {"mha": 1},
    "cct_sequence_pooling": {"mha": 1, "pooling": 1},
    "residual_attention": {"full_gate": 1},
    "vit_class_token": {"mha": 2, "rollout": 1},
    "subclassed_se": {"channel_gate": 1},
    "keras_attention_layers": {"keras_attention": 2, "rollout": 1},
    "mha_two_axes": {"mha": 1},
}
"""Modules by kind that discovery must find in each zoo model."""

HUB_EXPECTED = {
    "hub_mobilenet": {"channel_gate": 3},
    "hub_efficientnet": {"channel_gate": 3},
    "hub_vit": {"mha": 2, "rollout": 1},
    "hub_dinov2": {"mha": 2, "rollout": 1},
    "hub_deit": {"mha": 2, "rollout": 1},
}
"""keras-hub backbones (tiny configs): SE blocks counted from the configs
(MobileNet: the depthwise block's and two of three inverted residual
blocks'; EfficientNet: one per block), one MultiHeadAttention per
encoder layer."""

PATHS = {
    "attention_augmented": ["aa_conv/softmax"],
    "residual_attention": ["one_plus/add"],
    "subclassed_se": ["se_block/expand"],
    "hub_mobilenet": [
        "mobile_net_backbone/block_0_0/se_layer/gate",
        "mobile_net_backbone/block_1_0/squeeze_excite/gate",
        "mobile_net_backbone/block_2_1/squeeze_excite/gate",
    ],
    "hub_vit": [
        "vi_t_backbone/vit_encoder/encoder_layers_0/mha",
        "vi_t_backbone/vit_encoder/encoder_layers_1/mha",
        "attention_rollout",
    ],
}
"""Stable paths, outer layer / inner part, of modules inside layers."""


def _keras_hub():
    """keras-hub, or a skip: it is an optional test dependency."""
    return pytest.importorskip("keras_hub", reason=HUB_SKIP)


HUB_SKIP = "keras-hub is an optional test dependency (pip install .[test])"

HUB_CLASSES = {"hub_swin": "SwinTransformerBackbone", "hub_mit": "MiTBackbone"}


def _hub_model(name):
    """A keras-hub zoo model, or a skip where this keras-hub lacks its
    backbone class (SwinTransformerBackbone is not in keras-hub 0.25.1,
    the lowest version tested)."""
    keras_hub = _keras_hub()
    if not hasattr(keras_hub.models, HUB_CLASSES[name]):
        pytest.skip(
            f"keras_hub.models.{HUB_CLASSES[name]} does not exist in "
            f"keras-hub {keras_hub.__version__}"
        )
    with warnings.catch_warnings():
        # Keras warns that Swin's blocks pass their attention a ``mask``
        # it does not support, when keras-hub builds them.
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
        return getattr(zoo_models, name)()


@pytest.fixture(scope="module")
def zoo():
    return {name: getattr(zoo_models, name)() for name in EXPECTED}


@pytest.fixture(scope="module")
def hub_zoo():
    _keras_hub()
    return {name: getattr(zoo_models, name)() for name in HUB_EXPECTED}


@pytest.mark.parametrize("name", list(HUB_EXPECTED))
def test_keras_hub_backbones_modules_by_kind(hub_zoo, name):
    model = hub_zoo[name]
    modules = discover_modules(model)
    found = collections.Counter(m.kind.name for m in modules)
    assert dict(found) == HUB_EXPECTED[name]
    if name in PATHS:
        assert [m.path for m in modules] == PATHS[name]
    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    spatial = [m for m in modules if m.kind.spatial]
    if spatial:
        maps = attention_maps(model, images)
        for module in spatial:
            assert maps[module.path].shape == (2, 4, 4)
            # Softmax attention per patch, averaged: within [0, 1].
            assert np.all((maps[module.path] >= 0) & (maps[module.path] <= 1))
    for module in [m for m in modules if not m.kind.spatial]:
        weights = channel_attention_weights(model, images, module.path)
        assert weights.shape == (2, module.shape[-1])


@pytest.mark.parametrize("name", [n for n in PATHS if n in EXPECTED])
def test_modules_inside_layers_keep_outer_inner_paths(zoo, name):
    assert [m.path for m in discover_modules(zoo[name])] == PATHS[name]


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
    model.save(folder / f"{name}.keras")
    _write_baseline_and_data(model, folder)
    return folder / f"{name}.keras"


REPORTS = [
    pytest.param("coordinate_attention", [], id="coordinate"),
    pytest.param("hybrid_mha", ["--no-faithfulness"], id="mha"),
    pytest.param("small_ops_cbam", [], id="ops-cbam-with-faithfulness"),
    *(
        pytest.param(name, ["--no-faithfulness"], id=name)
        for name in (
            "mobilenet_v3_small",
            "mobilenet_v2_cbam",
            "resnet50_ops_cbam",
            "attention_unet_gate",
            "rescaling_model",
            "bam_gate",
            "grayscale_model",
        )
    ),
    pytest.param(
        "efficientnet_b0",
        ["--no-faithfulness"],
        id="efficientnet_b0",
        marks=pytest.mark.slow,
    ),
]
"""The zoo's reports: faithfulness on the small models that cover its
kinds; the backbones without it. Only EfficientNetB0 takes over 20 s."""


def _report(folder, *arguments):
    """``explain-attn report`` on ``folder/data.npz``: ``(html, data)``."""
    output = folder / "report.html"
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--data",
            str(folder / "data.npz"),
            "--num-examples",
            "2",
            "--output",
            str(output),
            *arguments,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    data = json.loads(output.with_suffix(".json").read_text())
    return output.read_text(encoding="utf-8"), data


def _assert_shows_modules_and_accuracy(model, html, data):
    """The report scores every spatial module discovery finds as a map,
    lists every channel module with its kind, and has both accuracies."""
    modules = discover_modules(model)

    def path(layer):  # A rescaled model's layers sit under its name.
        return layer.removeprefix(f"{model.name}/")

    shown = [
        e["layer"]
        for e in data["explanations"]
        if e["model"] == "attention" and e["method"] == "attention"
    ]
    assert [path(p) for p in shown] == [
        m.path for m in modules if m.kind.spatial
    ]
    for layer in shown:
        assert f"· {layer}" in html
    channel = [(m.path, m.kind.name) for m in modules if not m.kind.spatial]
    listed = [
        (path(row["layer"]), row["kind"])
        for entry in (data.get("channels") or {}).get("models", [])
        for row in entry["modules"]
    ]
    assert listed == channel
    assert ('id="channels"' in html) == bool(channel)
    assert validate(data) == [] and undeclared(data) == []  # channels too
    for row in data["models"]:
        assert row["accuracy"]["n"] == 8
        assert 0.0 <= row["accuracy"]["accuracy"] <= 1.0
    assert "Test accuracy" in html


@pytest.mark.parametrize(("name", "options"), REPORTS)
def test_report_from_the_cli(name, options, tmp_path):
    path = _save_zoo(name, tmp_path)
    html, data = _report(
        tmp_path,
        "--attention-model",
        str(path),
        "--baseline-model",
        str(tmp_path / "baseline.keras"),
        *options,
    )
    model = keras.models.load_model(path)
    _assert_shows_modules_and_accuracy(model, html, data)
    assert data["dataset"]["image_shape"] == list(model.inputs[0].shape[1:])
    if name == "rescaling_model":
        assert "byte" in data["models"][0]["input"]
    if "channel_gate" in EXPECTED[name] and len(EXPECTED[name]) == 1:
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
            "maps",
            str(model),
            "--data",
            str(tmp_path / "data.npz"),
            "--grad-cam",
            "--cam-class",
            "true",
            "--output",
            str(output),
        ],
    )
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
            "maps",
            str(tmp_path / "baseline.keras"),
            "--data",
            str(tmp_path / "data.npz"),
            "--grad-cam",
            "--cam-layer",
            "conv1",
            "--cam-class",
            "2",
            "--output",
            str(output),
        ],
    )
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


def build_with_lambda():
    # A Python lambda: the .keras file cannot be reloaded in safe mode.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Lambda(lambda t: 2.0 * t, name="twice")(x)
    gate = keras.layers.Conv2D(1, 1, activation="sigmoid", name="gate")(x)
    x = keras.layers.Multiply()([x, gate])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
"""


@pytest.fixture
def user_module(tmp_path):
    """The user's module (`CUSTOM`), imported, and 8 images of 8 x 8."""
    module = tmp_path / "zoo_user_layers.py"
    module.write_text(CUSTOM)
    from explain_attn.models.user_code import import_modules

    (user,) = import_modules([str(module)])
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "data.npz",
        images=rng.random((8, 8, 8, 3), dtype=np.float32),
        labels=np.arange(8) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    zoo_models.baseline(8).save(tmp_path / "baseline.keras")
    return module, user


def test_a_model_with_the_users_custom_layer(user_module, tmp_path):
    module, user = user_module
    model = user.build()
    model.save(tmp_path / "custom.keras")
    model.save_weights(tmp_path / "custom.weights.h5")
    for arguments in (
        [str(tmp_path / "custom.keras"), "--import", str(module)],
        [
            str(tmp_path / "custom.weights.h5"),
            "--model-factory",
            f"{module}:build",
        ],
    ):
        result = CliRunner().invoke(main, ["layers", *arguments])
        assert result.exit_code == 0, result.output
        assert "Attention modules: 1 (1 gate)" in result.output


def test_report_on_a_model_with_the_users_custom_layer(user_module, tmp_path):
    module, user = user_module
    model = user.build()
    model.save(tmp_path / "custom.keras")
    html, data = _report(
        tmp_path,
        "--import",
        str(module),
        "--attention-model",
        str(tmp_path / "custom.keras"),
        "--baseline-model",
        str(tmp_path / "baseline.keras"),
        "--faithfulness",
        "fast",
    )
    _assert_shows_modules_and_accuracy(model, html, data)
    assert [m.kind.name for m in discover_modules(model)] == ["gate"]
    assert data["models"][0]["name"] == "custom.keras"
    (interventions,) = data["faithfulness"]["interventions"]
    assert [row["layer"] for row in interventions["layers"]] == ["gate"]


def test_report_from_weights_and_factories(user_module, tmp_path):
    """A model that cannot be reloaded (a Python lambda) is built by the
    user's function, its weights read from .weights.h5; so is a baseline."""
    module, user = user_module
    model = user.build_with_lambda()
    model.save(tmp_path / "lambda.keras")
    model.save_weights(tmp_path / "lambda.weights.h5")
    keras.models.load_model(tmp_path / "baseline.keras").save_weights(
        tmp_path / "baseline.weights.h5"
    )
    (tmp_path / "zoo_user_baseline.py").write_text(
        "import zoo_models\n\n\ndef build():\n"
        "    return zoo_models.baseline(8)\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "layers",
            str(tmp_path / "lambda.keras"),
            "--import",
            str(module),
        ],
    )
    assert result.exit_code == 2
    assert "lambda" in result.stderr.lower()
    html, data = _report(
        tmp_path,
        "--no-faithfulness",
        "--attention-model",
        str(tmp_path / "lambda.weights.h5"),
        "--attention-factory",
        f"{module}:build_with_lambda",
        "--baseline-model",
        str(tmp_path / "baseline.weights.h5"),
        "--baseline-factory",
        f"{tmp_path / 'zoo_user_baseline.py'}:build",
    )
    _assert_shows_modules_and_accuracy(model, html, data)
    # The weights were read: the gate's maps are the saved model's.
    images = np.load(tmp_path / "data.npz")["images"]
    expected = entropy(attention_maps(model, images)["gate"])
    np.testing.assert_allclose(
        data["per_image"]["metrics"]["attention:gate"]["entropy"],
        expected,
        rtol=0,
        atol=1e-6,
    )
    assert data["models"][0]["name"] == "lambda.weights.h5"


# Reports of the self-attention zoo and keras-hub backbones (issue 24):
# several attention models in one report, to keep CI time.

SELF_ATTENTION_ZOO = [
    "non_local_block",
    "gcnet_block",
    "attention_augmented",
    "mobilevit_block",
    "cct_sequence_pooling",
    "vit_class_token",
    "subclassed_se",
    "keras_attention_layers",
]


def _write_baseline_and_data(model, folder):
    """A tiny baseline for ``model``'s input and 8 random images of three
    classes, in ``folder`` (``baseline.keras``, ``data.npz``)."""
    height, width, channels = model.inputs[0].shape[1:]
    zoo_models.baseline(height, channels).save(folder / "baseline.keras")
    rng = np.random.default_rng(1)
    np.savez(
        folder / "data.npz",
        images=rng.random((8, height, width, channels), dtype=np.float32),
        labels=np.arange(8) % 3,
        class_names=np.array(["a", "b", "c"]),
    )


def _report_of_many(names, builders, folder):
    """One ``explain-attn report`` of every model in ``names``: ``(html,
    data, {file name: model})``."""
    arguments, models = [], {}
    for name in names:
        model = builders[name]
        model.save(folder / f"{name}.keras")
        arguments += ["--attention-model", str(folder / f"{name}.keras")]
        # As the report reads it (keras-hub renames some layers on reload).
        models[f"{name}.keras"] = load_model(folder / f"{name}.keras")
    _write_baseline_and_data(model, folder)
    html, data = _report(
        folder,
        *arguments,
        "--baseline-model",
        str(folder / "baseline.keras"),
        "--no-faithfulness",
    )
    return html, data, models


def _assert_every_module_shown(data, models, *, ends=False):
    """Each model's spatial modules are its attention explanations, in
    order (``ends``: their paths' last two parts, where keras-hub names
    blocks anew on each reload); a model without a 4-D map has no
    Grad-CAM and a warning."""
    keys = {row["name"]: row["key"] for row in data["models"]}

    def named(path):
        return path.split("/")[-2:] if ends else path

    for name, model in models.items():
        shown = [
            named(e["layer"])
            for e in data["explanations"]
            if e["model"] == keys[name] and e["method"] == "attention"
        ]
        spatial = [
            named(m.path) for m in discover_modules(model) if m.kind.spatial
        ]
        assert shown == spatial
        cams = [
            e
            for e in data["explanations"]
            if e["model"] == keys[name] and e["method"] == "grad_cam"
        ]
        warned = [
            w
            for w in data["warnings"]
            if w["kind"] == "no_feature_map" and w["subject"] == name
        ]
        assert len(cams) + len(warned) == 1


@pytest.mark.slow
def test_report_of_the_self_attention_zoo(zoo, tmp_path):
    html, data, models = _report_of_many(SELF_ATTENTION_ZOO, zoo, tmp_path)
    _assert_every_module_shown(data, models)
    assert "attention_rollout" in html
    assert not [w for w in data["warnings"] if w["kind"] == "no_feature_map"]


@pytest.mark.slow
def test_report_of_keras_hub_backbones(hub_zoo, tmp_path):
    # keras-hub 0.32's EfficientNetBackbone does not rebuild from its own
    # config (its reloaded output has 320 channels, not 16): not reloadable
    # from .keras, so not in this report; its discovery is tested above.
    names = [n for n in HUB_EXPECTED if n != "hub_efficientnet"]
    builders = dict(hub_zoo)
    for name, backbone in HUB_CLASSES.items():
        # Swin and MiT where this keras-hub has them.
        if hasattr(_keras_hub().models, backbone):
            builders[name] = _hub_model(name)
            names.append(name)
    html, data, models = _report_of_many(names, builders, tmp_path)
    _assert_every_module_shown(data, models)
    warned = {
        w["subject"] for w in data["warnings"] if w["kind"] == "no_feature_map"
    }
    # ViT's, DINOv2's and DeiT's patch embeddings are traced
    # (explain_attn.batching):
    # their convolution's 4 x 4 patches are the 4-D map Grad-CAM weighs.
    assert warned == set()
    keys = {row["name"]: row["key"] for row in data["models"]}
    cams = {
        e["model"]: e["layer"]
        for e in data["explanations"]
        if e["method"] == "grad_cam"
    }
    assert "vit_patching_and_embedding/" in cams[keys["hub_vit.keras"]]
    assert "patch_embeddings/" in cams[keys["hub_dinov2.keras"]]
    assert "deit_patching_and_embedding/" in cams[keys["hub_deit.keras"]]
    assert "attention_rollout" in html


def test_report_of_residual_attention_built_by_its_factory(tmp_path):
    """A Lambda ``1 +`` cannot be reloaded from .keras in safe mode: the
    model is built by its function and its weights read."""
    model = zoo_models.residual_attention()
    model.save_weights(tmp_path / "residual.weights.h5")
    zoo_models.baseline(16).save(tmp_path / "baseline.keras")
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "data.npz",
        images=rng.random((8, 16, 16, 3), dtype=np.float32),
        labels=np.arange(8) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    factory = f"{Path(zoo_models.__file__)}:residual_attention"
    html, data = _report(
        tmp_path,
        "--no-faithfulness",
        "--attention-model",
        str(tmp_path / "residual.weights.h5"),
        "--attention-factory",
        factory,
        "--baseline-model",
        str(tmp_path / "baseline.keras"),
    )
    _assert_every_module_shown(data, {"residual.weights.h5": model})
    assert "one_plus/add" in html


def test_report_of_hub_efficientnet_built_by_its_factory(hub_zoo, tmp_path):
    """keras-hub 0.32's EfficientNetBackbone does not rebuild from its own
    config: its report is built by its function with ``--attention-factory``
    and its weights read; its squeeze-and-excitation gates are listed as
    channel modules and Grad-CAM weighs its last 4-D map."""
    model = hub_zoo["hub_efficientnet"]
    model.save_weights(tmp_path / "efficientnet.weights.h5")
    _write_baseline_and_data(model, tmp_path)
    _, data = _report(
        tmp_path,
        "--no-faithfulness",
        "--attention-model",
        str(tmp_path / "efficientnet.weights.h5"),
        "--attention-factory",
        f"{Path(zoo_models.__file__)}:hub_efficientnet",
        "--baseline-model",
        str(tmp_path / "baseline.keras"),
    )
    (listed,) = [
        m for m in data["channels"]["models"] if m["model"] == "attention"
    ]
    # The paths after the backbone's name (numbered when built twice).
    assert [m["layer"].split("/", 1)[1] for m in listed["modules"]] == [
        m.path.split("/", 1)[1] for m in discover_modules(model)
    ]
    assert {m["kind"] for m in listed["modules"]} == {"channel_gate"}
    cams = [
        e["layer"]
        for e in data["explanations"]
        if e["model"] == "attention" and e["method"] == "grad_cam"
    ]
    assert len(cams) == 1 and cams[0].endswith("top_activation")


# keras-hub backbones whose layers need the batch size as a number
# (``ops.shape(x)[0]``): traced with a known one (explain_attn.batching).


def _softmax_received(scores):
    """Attention each key receives, averaged over heads and queries, on a
    4 x 4 grid (scores ``(B, heads, queries, 16)``)."""
    scores = np.asarray(scores)
    return scores.mean(axis=(1, 2)).reshape(len(scores), 4, 4)


SWIN = "swin_transformer_backbone"


@pytest.fixture(scope="module")
def swin():
    """The zoo's Swin, its maps of two images and the images."""
    model = _hub_model("hub_swin")
    images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    return model, images, attention_maps(model, images)


def _partition(grid, window=4):
    """``(B, 8, 8, C)`` -> ``(B * 4, 16, C)``: 4 x 4 windows, row-major
    over the 2 x 2 windows of each image (Swin's layout)."""
    batch, channels = grid.shape[0], grid.shape[-1]
    grid = grid.reshape(batch, 2, window, 2, window, channels)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window**2, channels)


def _unpartition(windows, window=4):
    """``(B * 4, 16)`` -> ``(B, 8, 8)``, the inverse of `_partition`."""
    windows = windows.reshape(-1, 2, 2, window, window)
    return windows.transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)


def _shift_mask(shift=2, size=8, window=4):
    """Shifted-window attention's mask: -100 between positions of a
    window that came from different regions of the rolled map (Swin)."""
    bounds = [0, size - window, size - shift, size]
    regions = np.zeros((1, size, size, 1), np.float32)
    for i in range(3):
        for j in range(3):
            rows = slice(bounds[i], bounds[i + 1])
            cols = slice(bounds[j], bounds[j + 1])
            regions[0, rows, cols, 0] = 3 * i + j
    labels = _partition(regions)[..., 0]  # (4 windows, 16).
    return (labels[:, None, :] != labels[:, :, None]) * -100.0


def _window_received(block, tokens, shift):
    """Attention received per position of ``block`` (stage 0: 8 x 8),
    from keras-hub's own scores (``return_attns=True``), windows put back
    and the shift undone in NumPy; and the same left rolled."""
    normed = keras.ops.convert_to_numpy(block.norm1(tokens))
    grid = np.roll(normed.reshape(2, 8, 8, -1), (-shift, -shift), (1, 2))
    mask = _shift_mask() if shift else None
    _, scores = block.attn(_partition(grid), mask=mask, return_attns=True)
    received = keras.ops.convert_to_numpy(scores).mean(axis=(1, 2))
    rolled = _unpartition(received)
    return np.roll(rolled, (shift, shift), (1, 2)), rolled


def test_swin_modules_of_every_stage(swin):
    model, _, maps = swin
    blocks = [f"{SWIN}/stage_{s}/blocks_{b}" for s, b in ((0, 0), (0, 1))]
    assert [
        (m.path, m.kind.name, m.shape) for m in discover_modules(model)
    ] == [
        (f"{blocks[0]}/attn/softmax", "window", (8, 8, 1)),
        (f"{blocks[1]}/attn/softmax", "window", (8, 8, 1)),
        (f"{SWIN}/stage_1/blocks_0/attn/softmax", "dot_product", (4, 4, 1)),
    ]
    assert not flat_graph(model).untraced
    assert {maps[p].shape for p in maps} == {(2, 8, 8), (2, 4, 4)}
    # Its attention weights (dropout of a softmax) are no Grad-CAM map.
    assert not [p for p in cam_candidates(model) if "/attn/" in p]
    assert default_cam_layer(model).endswith("stage_0/downsample/reduction")


# Keras warns that Swin's blocks pass their attention a ``mask`` keyword,
# which it takes for a Keras mask the layer does not support.
@pytest.mark.filterwarnings("ignore::UserWarning:keras")
def test_swin_window_attention_against_keras_hubs_own_scores(swin):
    model, images, maps = swin
    backbone = model.get_layer(SWIN)
    stage = backbone.get_layer("stage_0")
    tokens = keras.Model(backbone.input, stage.input)(images)
    # Stage 0: 4 windows per image; its second block's shifted by 2.
    for block, shift in zip(stage.blocks, (0, 2), strict=True):
        expected, rolled = _window_received(block, tokens, shift)
        found = maps[f"{SWIN}/stage_0/{block.name}/attn/softmax"]
        np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
        # Each window's values average to 1 / 16 (normalised per window).
        windows = np.roll(found, (-shift, -shift), (1, 2))[..., None]
        np.testing.assert_allclose(
            _partition(windows).mean(axis=(1, 2)), 1 / 16, rtol=1e-5
        )
        if shift:  # The shift is undone: not the rolled windows.
            assert not np.allclose(found, rolled, atol=1e-4)
        tokens = block(tokens)
    # One 4 x 4 window is the whole stage-1 map.
    stage = backbone.get_layer("stage_1")
    block = stage.blocks[0]
    tokens = keras.Model(backbone.input, stage.input)(images)
    windows = keras.ops.reshape(block.norm1(tokens), (2, 16, -1))
    _, scores = block.attn(windows, return_attns=True)
    np.testing.assert_allclose(
        maps[f"{SWIN}/stage_1/blocks_0/attn/softmax"],
        _softmax_received(scores),
        rtol=1e-5,
        atol=1e-6,
    )


def test_mit_attention_against_numpy():
    model = _hub_model("hub_mit")
    modules = discover_modules(model)
    # Stage 0's keys are spatially reduced (sr_ratio 2): 4 x 4 of 8 x 8.
    assert [(m.path, m.kind.name, m.shape) for m in modules] == [
        (
            f"mi_t_backbone/hierarchical_encoder_{i}_0/attn/softmax",
            "dot_product",
            (4, 4, 1),
        )
        for i in (0, 1)
    ]
    # Its attention is traced (keras-hub 0.25's DropPath, an identity at
    # inference, is not: a trace must connect inputs to outputs).
    assert not [p for p in flat_graph(model).untraced if "attn" in p]
    images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    maps = attention_maps(model, images)
    backbone = model.get_layer("mi_t_backbone")
    encoder = backbone.get_layer("hierarchical_encoder_1_0")
    tokens = keras.Model(backbone.input, encoder.input)(images)
    normed = encoder.norm1(tokens)
    attention = encoder.attn

    def heads(dense):  # (2, 16 tokens, 2 heads, 8) -> (2, 2, 16, 8)
        values = keras.ops.convert_to_numpy(dense(normed))
        return values.reshape(2, 16, 2, 8).transpose(0, 2, 1, 3)

    logits = heads(attention.q) @ heads(attention.k).transpose(0, 1, 3, 2)
    logits = logits * attention.scale
    scores = np.exp(logits - logits.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(
        maps["mi_t_backbone/hierarchical_encoder_1_0/attn/softmax"],
        _softmax_received(scores),
        rtol=1e-5,
        atol=1e-6,
    )


def test_deit_attention_and_rollout_against_keras_own_scores():
    """DeiT's blocks return ``(y, None)`` (tracing keeps the ``None``); its
    class token's attention to the patches, after a distillation token."""
    _keras_hub()
    model = zoo_models.hub_deit()
    modules = discover_modules(model)
    encoder = "dei_t_backbone/deit_encoder"
    assert [(m.path, m.kind.name, m.kind.extra) for m in modules] == [
        (f"{encoder}/encoder_layers_0/mha", "mha", 2),
        (f"{encoder}/encoder_layers_1/mha", "mha", 2),
        ("attention_rollout", "rollout", 2),
    ]
    assert not flat_graph(model).untraced
    images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    maps = attention_maps(model, images)
    # Keras' own layer, called eagerly block after block.
    backbone = model.get_layer("dei_t_backbone")
    tokens = backbone.get_layer("deit_patching_and_embedding")(images)
    rollout = np.eye(18)  # class, distillation and 16 patch tokens
    for index, block in enumerate(
        backbone.get_layer("deit_encoder").encoder_layers
    ):
        normed = block.layer_norm_1(tokens)
        _, scores = block.mha(normed, normed, return_attention_scores=True)
        scores = np.asarray(scores, dtype=np.float64)  # (2, 2, 18, 18)
        np.testing.assert_allclose(
            maps[f"{encoder}/encoder_layers_{index}/mha"],
            scores[:, :, 0, 2:].mean(axis=1).reshape(2, 4, 4),
            rtol=0,
            atol=1e-5,
        )
        mixed = 0.5 * scores.mean(axis=1) + 0.5 * np.eye(18)
        rollout = mixed / mixed.sum(axis=-1, keepdims=True) @ rollout
        tokens, none = block(tokens)
        assert none is None
    np.testing.assert_allclose(
        maps["attention_rollout"],
        rollout[:, 0, 2:].reshape(2, 4, 4),
        rtol=0,
        atol=1e-5,
    )


def test_gate_inside_a_subclassed_model(tmp_path):
    """A top-level model whose ``call`` is Python: its call is traced; the
    gate's path is the attribute holding it."""
    model = zoo_models.subclassed_model()
    model.save_weights(tmp_path / "gated.weights.h5")
    factory = f"{Path(zoo_models.__file__)}:subclassed_model"
    result = CliRunner().invoke(
        main,
        [
            "layers",
            str(tmp_path / "gated.weights.h5"),
            "--model-factory",
            factory,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Attention modules: 1 (1 gate)" in result.output
    (module,) = discover_modules(model)
    assert (module.path, module.kind.name, module.shape) == (
        "gate",
        "gate",
        (16, 16, 1),
    )
    images = np.random.default_rng(0).random((2, 16, 16, 3), np.float32)
    expected = np.asarray(model.gate(model.stem(images)))[..., 0]
    np.testing.assert_allclose(
        attention_maps(model, images)["gate"], expected, rtol=1e-5, atol=1e-6
    )
    # A report from the CLI: the gate's map, Grad-CAM on its stem.
    zoo_models.baseline(16).save(tmp_path / "baseline.keras")
    np.savez(
        tmp_path / "data.npz",
        images=np.random.default_rng(1).random((8, 16, 16, 3), np.float32),
        labels=np.arange(8) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    _, data = _report(
        tmp_path,
        "--no-faithfulness",
        "--attention-model",
        str(tmp_path / "gated.weights.h5"),
        "--attention-factory",
        factory,
        "--baseline-model",
        str(tmp_path / "baseline.keras"),
    )
    assert {
        (e["method"], e["layer"])
        for e in data["explanations"]
        if e["model"] == "attention"
    } == {("attention", "gate"), ("grad_cam", "stem")}


def test_multi_head_attention_over_both_spatial_axes(zoo):
    """``attention_axes=(1, 2)`` on ``(B, h, w, c)``: the map is the
    attention each position receives, averaged over heads and queries."""
    model = zoo["mha_two_axes"]
    (module,) = discover_modules(model)
    assert (module.path, module.shape) == ("mha", (8, 8, 1))
    images = np.random.default_rng(0).random((2, 8, 8, 3), np.float32)
    features = keras.Model(model.input, model.get_layer("stem").output)(images)
    _, scores = model.get_layer("mha")(
        features, features, return_attention_scores=True
    )
    expected = np.asarray(scores).reshape(2, 2, 64, 64).mean(axis=(1, 2))
    np.testing.assert_allclose(
        attention_maps(model, images)["mha"],
        expected.reshape(2, 8, 8),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.slow
def test_report_of_fused_and_multi_query_attention(tmp_path):
    """DINOv3's fused attention and MobileNetV5's multi-query attention
    (`tests/test_zoo_hub.py` checks their maps) in one CLI report, each
    module an explanation, Grad-CAM on their convolutions."""
    _keras_hub()
    names = ["hub_dinov3", "hub_mobilenetv5"]
    with warnings.catch_warnings():
        # keras-hub's MobileNetV5 serialises a lambda activation.
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
        builders = {name: getattr(zoo_models, name)() for name in names}
        html, data, models = _report_of_many(names, builders, tmp_path)
    # keras-hub names these backbones' blocks anew on each reload
    # (``mobile_attention_2``): the paths' ends are compared.
    _assert_every_module_shown(data, models, ends=True)
    # Grad-CAM on a convolution of each backbone.
    assert not [w for w in data["warnings"] if w["kind"] == "no_feature_map"]
    assert "dot_product_attention" in html
    assert "attention_rollout" in html
