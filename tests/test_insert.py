"""`add_attention`: kinds, names, weights, nesting, the control, errors."""

import keras
import numpy as np
import pytest

from explain_attn import add_attention, load_model, save_model
from explain_attn.explanations import attention_layer_names
from explain_attn.models.insert import ATTENTION_KINDS
from explain_attn.models.lookup import attention_modules

SHAPE = (8, 8, 3)


def _plain(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="plain")


def _nested(seed=0):
    """A backbone used as one layer, as users nest keras.applications."""
    keras.utils.set_random_seed(seed)
    inner_inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="stage1")(inner_inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stage2")(x)
    backbone = keras.Model(inner_inputs, x, name="backbone")
    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="outer")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize(
    "kind, added",
    [
        # SpatialAttention: a 7x7 conv from 2 channels to 1, with bias.
        ("spatial", 7 * 7 * 2 + 1),
        # Channel MLP 4 -> max(1, 4 // 8) = 1 -> 4, with biases: 4 + 1 +
        # 4 + 4; CBAM adds the spatial conv.
        ("channel", 4 * 1 + 1 + 1 * 4 + 4),
        ("cbam", 4 * 1 + 1 + 1 * 4 + 4 + 7 * 7 * 2 + 1),
        ("se", 4 * 1 + 1 + 1 * 4 + 4),
        # ECA: k = odd(|log2(4) + 1| / 2) = odd(1) = 1, no bias.
        ("eca", 1),
    ],
)
def test_each_kind_adds_its_parameters_with_a_readable_name(
    kind, added, images
):
    model = _plain()
    before = _weights(model)
    new = add_attention(model, "conv1", kind=kind)
    assert new.name == f"plain_{kind}"
    assert new.count_params() == model.count_params() + added
    assert new.get_layer(f"conv1_{kind}").name == f"conv1_{kind}"
    assert new(images).shape == (3, 2)
    # The original is untouched and the copy starts from its weights.
    for old, now in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(old, now)
    for name in ("conv1", "bn1", "conv2", "head"):
        for a, b in zip(
            model.get_layer(name).get_weights(),
            new.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    assert new.get_layer("conv1") is not model.get_layer("conv1")


def test_spatial_kinds_are_found_as_attention(images):
    assert attention_layer_names(
        add_attention(_plain(), "conv1", kind="cbam")
    ) == ["conv1_cbam"]
    channel = add_attention(_plain(), "conv1", kind="channel")
    assert [m.path for m in attention_modules(channel, spatial=False)] == [
        "conv1_channel"
    ]


def test_squeeze_excitation_is_an_ordinary_sigmoid_gate(images):
    model = add_attention(_plain(), "conv2", kind="se")
    gate = model.get_layer("conv2_se_expand")
    assert gate.get_config()["activation"] == "sigmoid"
    assert tuple(gate.output.shape) == (None, 1, 1, 6)
    features = keras.Model(model.input, model.get_layer("conv2").output)
    weights = keras.Model(model.input, gate.output)
    attended = keras.Model(model.input, model.get_layer("conv2_se").output)
    np.testing.assert_allclose(
        attended(images), features(images) * weights(images), rtol=1e-6
    )
    eca = add_attention(_plain(), "conv2", kind="eca")
    assert tuple(eca.get_layer("conv2_eca_gate").output.shape) == (
        None, 1, 1, 6,
    )  # fmt: skip


def test_control_is_the_original_network(images):
    model = _plain()
    control = add_attention(
        model, ["conv1", "conv2"], kind="cbam", control=True
    )
    assert control.name == "plain_cbam_control"
    assert control.count_params() == model.count_params()
    assert isinstance(
        control.get_layer("conv1_cbam_control"), keras.layers.Identity
    )
    np.testing.assert_allclose(control(images), model(images), rtol=1e-6)
    assert attention_layer_names(control) == []


def test_inside_a_nested_backbone_by_path_or_pattern(images):
    model = _nested()
    new = add_attention(model, ["backbone/stage1", "*stage2"], kind="spatial")
    assert attention_layer_names(new) == [
        "backbone/stage1_spatial",
        "backbone/stage2_spatial",
    ]
    assert new.count_params() == model.count_params() + 2 * 99
    control = add_attention(model, "*stage*", kind="spatial", control=True)
    np.testing.assert_allclose(control(images), model(images), rtol=1e-6)
    # After the nested model itself, at the outer level.
    outer = add_attention(model, "backbone", kind="cbam")
    assert attention_layer_names(outer) == ["backbone_cbam"]


def test_sequential_models(images):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    control = add_attention(model, "conv", kind="eca", control=True)
    np.testing.assert_allclose(control(images), model(images), rtol=1e-6)
    assert add_attention(model, "conv", kind="se").get_layer("conv_se")


def test_saves_and_loads_in_safe_mode(tmp_path, images):
    for kind in ATTENTION_KINDS:
        model = add_attention(_nested(), "*stage2", kind=kind)
        path = tmp_path / f"{kind}.keras"
        save_model(model, path)
        np.testing.assert_allclose(
            load_model(path)(images), model(images), rtol=1e-5
        )


@pytest.mark.parametrize(
    "after, kind, message",
    [
        ("conv9", "spatial", "No layer named 'conv9'"),
        ("*nothing*", "spatial", "matches no 4-D layer"),
        ("head", "spatial", "attention needs a 4-D output"),
        ("gap", "cbam", "output shape (None, 6)"),
        ([], "spatial", "at least one layer"),
        ("conv1", "transformer", "Unknown attention kind"),
    ],
)
def test_bad_requests(after, kind, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        add_attention(_plain(), after, kind=kind)


def test_inserting_twice_names_the_problem():
    once = add_attention(_plain(), "conv1", kind="spatial")
    with pytest.raises(ValueError, match="already inserted"):
        add_attention(once, "conv1", kind="spatial")
