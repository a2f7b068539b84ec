"""Faithfulness modes (full, fast, demo, off), sample sizes and the block
cascade."""

import json

import keras
import numpy as np
import pytest

from explain_attn.attention import SpatialAttention
from explain_attn.faithfulness import cascade_steps, randomization_check
from explain_attn.report.faithfulness import (
    FAITHFULNESS_MODES,
    FaithfulnessSettings,
    _subsets,
    demo_mode,
    faithfulness_settings,
)


def test_settings_of_each_mode():
    full = faithfulness_settings("full")
    fast = faithfulness_settings("fast")
    assert faithfulness_settings(True) is full
    assert faithfulness_settings("off") is None
    assert faithfulness_settings(False) is None
    assert faithfulness_settings(None) is None
    assert faithfulness_settings(None, deletion_images=None) is None
    assert faithfulness_settings(full) is full
    # The fast mode is a subset: fewer images and steps for every check.
    assert fast.intervention_images < full.intervention_images
    assert fast.randomization_images < full.randomization_images
    assert fast.deletion_images < full.deletion_images
    assert fast.steps < full.steps
    assert (full.cascade, fast.cascade) == ("auto", "blocks")
    assert set(FAITHFULNESS_MODES) == {"full", "fast", "demo"}


def test_the_demo_mode_is_full_on_half_the_randomisation_and_deletion_images():
    full, demo = faithfulness_settings("full"), faithfulness_settings("demo")
    assert demo.mode == "demo"
    assert demo.intervention_images == full.intervention_images == 1000
    assert (demo.steps, demo.cascade) == (full.steps, full.cascade)
    assert (demo.randomization_images, demo.deletion_images) == (128, 128)
    assert (full.randomization_images, full.deletion_images) == (256, 256)
    assert full.note is None and "--faithfulness full runs them" in demo.note
    # Sizes set by hand make a custom mode, without the demo's note.
    custom = faithfulness_settings("demo", deletion_images=64)
    assert (custom.mode, custom.note) == ("custom", None)
    assert (custom.randomization_images, custom.deletion_images) == (128, 64)


def test_the_demo_s_note_leads_the_section_s_notes():
    said, demo = [], faithfulness_settings("demo")
    test = type("Test", (), {"labels": np.zeros(300, int)})()
    subsets, notes = _subsets(test, demo, 0, said.append)
    assert notes == [demo.note]
    assert said == [f"Faithfulness: {demo.note}"]
    sizes = {name: len(subset[1]) for name, subset in subsets.items()}
    assert sizes == {
        "intervention_images": 300,  # all of them, without a note
        "randomization_images": 128,
        "deletion_images": 128,
    }
    full = faithfulness_settings("full")
    assert _subsets(test, full, 0, said.append)[1] == []


@pytest.mark.parametrize(
    ("given", "demo", "mode"),
    [
        ((None, False), True, "demo"),
        ((None, False), False, "full"),
        (("full", False), True, "full"),
        (("fast", False), True, "fast"),
        ((None, True), True, "off"),
        (("off", True), False, "off"),
    ],
)
def test_the_command_s_mode(given, demo, mode):
    assert demo_mode(*given, demo=demo) == mode


def test_disagreeing_options_are_refused():
    with pytest.raises(ValueError, match="--faithfulness fast disagree"):
        demo_mode("fast", True)


def test_sizes_replace_the_mode_s():
    settings = faithfulness_settings(
        "fast", randomization_images=7, deletion_images=None
    )
    assert isinstance(settings, FaithfulnessSettings)
    assert settings.mode == "custom"
    assert settings.randomization_images == 7
    assert (
        settings.deletion_images == FAITHFULNESS_MODES["fast"].deletion_images
    )
    assert settings.requested == ("randomization_images",)


@pytest.mark.parametrize(
    ("mode", "sizes", "message"),
    [
        ("bogus", {}, "must be one of full, fast, off"),
        ("full", {"deletion_images": 0}, "must be a positive integer"),
        ("full", {"randomization_images": -3}, "must be a positive integer"),
        ("full", {"intervention_images": 2.5}, "must be a positive integer"),
        ("full", {"steps": True}, "must be a positive integer"),
        ("off", {"deletion_images": 5}, "the checks are off"),
        ("fast", {"images": 5}, "Unknown faithfulness settings"),
    ],
)
def test_bad_settings(mode, sizes, message):
    with pytest.raises(ValueError, match=message):
        faithfulness_settings(mode, **sizes)


def _named_model():
    """Block-named layers at two resolutions, an attention layer, a head."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem_a")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem_b")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block_1_expand")(x)
    x = keras.layers.BatchNormalization(name="block_1_bn")(x)
    x = keras.layers.Conv2D(
        4, 3, strides=2, padding="same", name="conv3_block2_1_conv"
    )(x)
    x = keras.layers.Conv2D(4, 1, name="conv3_block2_2_conv")(x)
    x = keras.layers.Conv2D(4, 1, name="top_a")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="top_b")(x)
    x = SpatialAttention(name="block9_attention")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, name="fc")(x)
    outputs = keras.layers.Dense(2, name="predictions")(x)
    return keras.Model(inputs, outputs)


def test_block_steps_follow_names_then_resolution_runs():
    model = _named_model()
    steps = cascade_steps(model, "blocks", own=["block9_attention"])
    assert steps == [
        ("stem_a … stem_b", ["stem_a", "stem_b"]),
        ("block_1", ["block_1_expand", "block_1_bn"]),
        ("conv3_block2", ["conv3_block2_1_conv", "conv3_block2_2_conv"]),
        # top_a keeps the 8 x 8 resolution, top_b halves it.
        ("top_a", ["top_a"]),
        ("top_b", ["top_b"]),
        ("block9_attention", ["block9_attention"]),
        ("fc … predictions", ["fc", "predictions"]),
    ]
    # Without `own`, the attention layer's name puts it in block 9.
    assert ("block9", ["block9_attention"]) in cascade_steps(model, "blocks")


def test_auto_is_layer_by_layer_for_small_models():
    model = _named_model()
    weighted = [
        layer.name
        for layer in model.layers
        if layer.weights and not isinstance(layer, keras.Model)
    ]
    steps = cascade_steps(model, "auto")
    assert steps == [(name, [name]) for name in weighted]
    assert cascade_steps(model, "layers") == steps
    with pytest.raises(ValueError, match="must be one of auto, layers"):
        cascade_steps(model, "stages")


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, include_top=False
    )
    x = SpatialAttention(name="attention")(base.output)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(base.input, outputs)


def test_mobilenet_v2_blocks(mobilenet):
    steps = cascade_steps(mobilenet, own=["attention"])
    names = [name for name, _ in steps]
    # 104 layers with weights in the backbone: "auto" uses blocks.
    assert len(cascade_steps(mobilenet, "layers")) == 106
    assert names == [
        "Conv1 … expanded_conv_project_BN",
        *(f"block_{index}" for index in range(1, 17)),
        "Conv_1 … Conv_1_bn",
        "attention",
        "predictions",
    ]
    assert all(len(paths) == 6 for _, paths in steps[1:17])
    assert sum(len(paths) for _, paths in steps) == 106


def test_nested_backbone_keeps_its_prefix():
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, include_top=False
    )
    nested = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="head"),
        ]
    )
    names = [name for name, _ in cascade_steps(nested)]
    assert names[1] == f"{base.name}/block_1"
    assert names[-1] == "head"
    assert len(names) == 19


def test_randomization_check_by_blocks():
    keras.utils.set_random_seed(1)
    model = _named_model()
    images = np.random.default_rng(0).random((3, 16, 16, 3), np.float32)
    result = randomization_check(
        model, images, cascade="blocks", independent=False
    )
    cascade = result["cascade"]
    assert cascade["unit"] == "blocks"
    # From the output down, one step per block: 7 steps, 8 points.
    assert cascade["layers"][0] == "fc … predictions"
    assert cascade["layers"][-1] == "stem_a … stem_b"
    assert len(cascade["steps"]) == 7
    for curve in cascade["spearman_median"].values():
        assert len(curve) == 8
    layerwise = randomization_check(
        model, images, cascade="layers", independent=False
    )
    assert layerwise["cascade"]["unit"] == "layers"
    assert len(layerwise["cascade"]["layers"]) == 11


def test_report_modes_and_clamped_sizes(report_inputs, tmp_path):
    from click.testing import CliRunner

    from explain_attn.cli import main

    output = tmp_path / "r.html"
    arguments = [
        "report",
        "--data",
        str(report_inputs["data"]),
        "--attention-model",
        str(report_inputs["attention"]),
        "--baseline-model",
        str(report_inputs["baseline"]),
        "--num-examples",
        "1",
        "--output",
        str(output),
    ]
    result = CliRunner().invoke(
        main, [*arguments, "--faithfulness", "fast", "--deletion-images", "50"]
    )
    assert result.exit_code == 0, result.output
    section = json.loads(output.with_suffix(".json").read_text())[
        "faithfulness"
    ]
    settings = section["settings"]
    # 12 test images: the fast mode's 32 randomisation images become 12
    # silently, the 50 deletion images asked for with a note.
    assert settings["mode"] == "custom"
    assert settings["num_randomization_images"] == 12
    assert settings["num_deletion_images"] == 12
    assert settings["steps"] == 5
    assert settings["cascade"] == "blocks"
    assert len(section["deletion_insertion"]["fractions"]) == 6
    assert section["notes"][0] == (
        "The deletion check asked for 50 test images; the test split has "
        "12, so it uses all 12."
    )
    assert "asked for 50" in result.output
    result = CliRunner().invoke(main, [*arguments, "--faithfulness", "off"])
    assert result.exit_code == 0, result.output
    data = json.loads(output.with_suffix(".json").read_text())
    assert "faithfulness" not in data


@pytest.mark.parametrize(
    ("options", "mode", "deletion"),
    [
        ([], "demo", 128),
        (["--faithfulness", "full"], "full", 256),
        (["--deletion-images", "64"], "custom", 64),
        (["--task", "segmentation"], "full", 256),
        (["--data", "cifar10"], "full", 256),
        (["--baseline-model", "b.keras"], "full", 256),
    ],
)
def test_only_the_demo_defaults_to_the_demo_mode(
    options, mode, deletion, monkeypatch, tmp_path
):
    from click.testing import CliRunner

    import explain_attn.report
    from explain_attn.cli import main

    given = {}

    def captured(data, **options):
        given.update(options)
        raise ValueError("captured")

    monkeypatch.setattr(explain_attn.report, "report_from_sources", captured)
    output = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["report", *options, "--quiet", "--output", str(output)]
    )
    assert result.exit_code == 2 and "captured" in result.output
    checks = given["faithfulness"]
    assert (checks.mode, checks.deletion_images) == (mode, deletion)
