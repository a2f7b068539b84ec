"""`explain-attn train` on what users have: factories and backbones.

The backbone runs use the smallest inputs `keras.applications` accepts
(32x32), 16 images and one epoch; they still take 15-80 s each on 2 CPU
cores, so they are marked slow. ResNet50 (25 M parameters; 46 s here, most
of it saving and loading 94 MB) is built in the zoo's tests instead.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from explain_attn import load_model
from explain_attn.cli import main
from explain_attn.explanations import attention_layer_names
from explain_attn.models.recorder import load_record


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """32x32 PNGs with masks, 8 per class: a bright or dark square."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label, class_name in enumerate(("dark", "light")):
        (root / "images" / class_name).mkdir(parents=True)
        (root / "masks" / class_name).mkdir(parents=True)
        for index in range(10):
            image = rng.integers(60, 190, (32, 32, 3), dtype=np.uint8)
            mask = np.zeros((32, 32), np.uint8)
            row, column = rng.integers(0, 16, 2)
            mask[row : row + 16, column : column + 16] = 255
            image[mask > 0] = 255 * label
            name = f"{class_name}{index}.png"
            Image.fromarray(image).save(root / "images" / class_name / name)
            Image.fromarray(mask).save(root / "masks" / class_name / name)
    (root / "factory.py").write_text(
        "import keras\n\n"
        "def build(input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Conv2D(4, 3, padding='same', name='conv')"
        "(inputs)\n"
        "    x = keras.layers.GlobalAveragePooling2D()(x)\n"
        "    outputs = keras.layers.Dense(num_classes, "
        "activation='softmax')(x)\n"
        "    return keras.Model(inputs, outputs, name='mine')\n"
    )
    return root


def _train(folder, output, *arguments):
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(folder), "--epochs", "1", "--batch-size",
         "8", "--output", str(output), *arguments],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result, json.loads(output.with_suffix(".json").read_text())


def test_a_factory_with_attention_inserted(folder, tmp_path):
    output = tmp_path / "mine.keras"
    result, history = _train(
        folder, output,
        "--model-factory", f"{folder / 'factory.py'}:build",
        "--attention", "spatial", "--after", "conv",
    )  # fmt: skip
    model = load_model(output)
    assert attention_layer_names(model) == ["conv_spatial"]
    assert history["attention"] == {
        "kind": "spatial", "after": ["conv"], "control": False,
        "parameters_added": 7 * 7 * 2 + 1,
    }  # fmt: skip
    # A factory's model is the user's own: its inputs are not standardised.
    assert history["standardized_inputs"] is False
    # 20 images: 4 held out for testing, then 2 of 16 for validation.
    assert (history["training_images"], history["validation_images"]) == (
        14, 2,
    )  # fmt: skip
    record = load_record(tmp_path / "mine.record.npz")
    assert record.epoch.tolist() == [0.0, 1.0]
    assert record.meta["check"] == history["check"]
    assert "Attention record:" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mine.json", "mine.keras", "mine.record.npz",
    ]  # fmt: skip


@pytest.mark.slow
def test_mobilenet_with_cbam_after_two_stages_then_a_report(folder, tmp_path):
    common = ["--backbone", "MobileNetV2", "--alpha", "0.35"]
    attention = tmp_path / "cbam.keras"
    _, history = _train(
        folder,
        attention,
        *common,
        "--attention",
        "cbam",
        "--after",
        "block_5_add",
        "--after",
        "block_12_add",
    )
    control = tmp_path / "control.keras"
    _, control_history = _train(
        folder, control, *common, "--attention", "cbam", "--after",
        "block_5_add", "--after", "block_12_add", "--control",
    )  # fmt: skip
    # CBAM at 16 and 32 channels (alpha 0.35): MLPs 16->2->16 and
    # 32->4->32 with biases, and two 7x7x2 convolutions with bias.
    added = (16 * 2 + 2 + 2 * 16 + 16) + (32 * 4 + 4 + 4 * 32 + 32)
    assert history["attention"]["parameters_added"] == added + 2 * 99
    assert history["parameters"] - control_history["parameters"] == (
        added + 2 * 99
    )
    model = load_model(attention)
    assert attention_layer_names(model) == [
        "mobilenetv2_0.35_32/block_5_add_cbam",
        "mobilenetv2_0.35_32/block_12_add_cbam",
    ]
    assert model.layers[1].name == "input_standardization"
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", "--data", str(folder), "--attention-model",
         str(attention), "--baseline-model", str(control),
         "--num-examples", "2", "--no-faithfulness", "--output",
         str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Attention during training" in report.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone, extra",
    [("EfficientNetB0", ["--freeze-backbone"]), ("MobileNetV3Small", [])],
)
def test_other_backbones_train(folder, tmp_path, backbone, extra):
    output = tmp_path / f"{backbone}.keras"
    _, history = _train(folder, output, "--backbone", backbone, *extra,
                        "--no-record")  # fmt: skip
    assert history["backbone"] == backbone
    assert len(history["history"]["loss"]) == 1
    assert not (tmp_path / f"{backbone}.record.npz").exists()
    assert load_model(output).output_shape == (None, 2)


def test_resume_early_stopping_and_best_weights(folder, tmp_path):
    output = tmp_path / "m.keras"
    _, history = _train(
        folder, output, "--architecture", "small_convnet", "--epochs", "3",
        "--resume", "--early-stopping", "1", "--restore-best",
        "--validation-split", "0.25",
    )  # fmt: skip
    assert 1 <= len(history["history"]["loss"]) <= 3
    assert history["validation_images"] == 4
    assert history["standardized_inputs"] is True
    # The backup is removed once training ends.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.json", "m.keras", "m.record.npz",
    ]  # fmt: skip
