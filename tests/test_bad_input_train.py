"""Bad input to `explain-attn train` with backbones, factories, attention.

Each case: exit code 2, one line on stderr naming the problem and the fix,
nothing written (see `catalogue.assert_bad_input`).
"""

import keras
import numpy as np
import pytest
from catalogue import BAD_DEVICE_COUNTS, assert_bad_input
from PIL import Image


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_inputs")
    rng = np.random.default_rng(0)
    for class_name in ("a", "b"):
        (root / "data/images" / class_name).mkdir(parents=True)
        for index in range(4):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(
                root / "data/images" / class_name / f"{index}.png"
            )
    (root / "factories.py").write_text(
        "def not_a_model(input_shape, num_classes):\n    return 'model'\n"
    )
    tiny = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    tiny.save_weights(root / "other.weights.h5")
    return root


def _run(inputs, tmp_path, *arguments, message):
    output = tmp_path / "model.keras"
    assert_bad_input(
        ["train", "--data", inputs / "data", *arguments, "--epochs", "1",
         "--output", output],
        message, output, tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--backbone", "VGG99"], "Unknown backbone. Received: --backbone "
         "VGG99. Expected one of: MobileNetV2"),
        (["--backbone", "MobileNetV2"], "needs images of at least 32x32. "
         "Received: 16x16"),
        (["--architecture", "small_convnet", "--attention", "cbam",
          "--after", "nothing*"], "'nothing*' matches no 4-D layer"),
        (["--architecture", "small_convnet", "--attention", "cbam",
          "--after", "predictions"], "attention needs a 4-D output"),
        (["--architecture", "small_convnet", "--attention", "cbam"],
         "needs --after PATTERN"),
        (["--after", "block1_conv"], "need --attention KIND"),
        (["--weights", "w.h5"], "--weights applies to --backbone only"),
        (["--architecture", "baseline", "--backbone", "ResNet50"],
         "Give one of --architecture, --backbone and --model-factory"),
        (["--early-stopping", "2", "--validation-split", "0"],
         "give --validation-split above 0"),
        (["--backbone", "ResNet50", "--alpha", "0.5", "--image-size", "32"],
         "--alpha applies to the MobileNet backbones"),
    ],
)  # fmt: skip
def test_bad_model_options(inputs, tmp_path, arguments, message):
    _run(inputs, tmp_path, *arguments, message=message)


def test_a_factory_that_returns_no_model(inputs, tmp_path):
    factory = f"{inputs / 'factories.py'}:not_a_model"
    _run(inputs, tmp_path, "--model-factory", factory,
         message="returned str, not a keras.Model")  # fmt: skip


def test_weights_that_do_not_fit(inputs, tmp_path):
    _run(inputs, tmp_path, "--backbone", "MobileNetV2", "--alpha", "0.35",
         "--image-size", "32", "--weights", inputs / "other.weights.h5",
         message="does not fit MobileNetV2 without its top")  # fmt: skip
    _run(inputs, tmp_path, "--backbone", "MobileNetV2", "--image-size",
         "32", "--weights", inputs / "missing.h5",
         message="no such file")  # fmt: skip


@pytest.mark.parametrize(("devices", "message"), BAD_DEVICE_COUNTS)
def test_bad_device_counts(inputs, tmp_path, devices, message):
    _run(inputs, tmp_path, "--devices", devices, message=message)
