"""Bad input on the data path of ``explain-attn maps``: one line, exit 2,
nothing written (see `catalogue.assert_bad_input`)."""

import keras
import numpy as np
import pytest
from catalogue import assert_bad_input
from click.testing import CliRunner
from PIL import Image

from explain_attn import build_model, save_model
from explain_attn.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_data_inputs")
    keras.utils.set_random_seed(4)
    paths = {}
    for name, shape in (("rgb", (16, 16, 3)), ("four", (16, 16, 4))):
        paths[name] = root / f"{name}.keras"
        save_model(
            build_model("small_attention", input_shape=shape, num_classes=2),
            paths[name],
        )
    rng = np.random.default_rng(0)
    for index in range(2):
        folder = root / "pngs" / "images" / "ab"[index]
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    paths["pngs"] = root / "pngs"
    labels = np.array([0, 1])
    paths["bytes"] = root / "bytes.npz"
    np.savez(
        paths["bytes"], images=np.full((2, 16, 16, 3), 200.0), labels=labels
    )
    paths["symmetric"] = root / "symmetric.npz"
    np.savez(
        paths["symmetric"], images=np.full((2, 16, 16, 3), -0.5), labels=labels
    )
    paths["small"] = root / "small.npz"
    np.savez(paths["small"], images=np.zeros((2, 8, 8, 3)), labels=labels)
    paths["foreign"] = root / "foreign"
    paths["foreign"].mkdir()
    (paths["foreign"] / "notes.txt").write_text("mine")
    return paths


def _maps(inputs, data, *extra):
    return ["maps", inputs["rgb"], "--data", inputs[data], *extra]


CASES = [
    (("pngs", "--input-scale", "bytes"), "Invalid value for '--input-scale'"),
    (("pngs", "--image-size", "0x5"), "'0x5' is not a size"),
    (("pngs", "--image-size", "abc"), "HEIGHTxWIDTH"),
    (("pngs", "--image-size", "8x"), "is not a size"),
    (("bytes",), "--input-scale byte"),
    (("bytes", "--input-scale", "unit"), "must lie in [0, 1]"),
    (("symmetric", "--input-scale", "unit"), "--input-scale symmetric"),
    (("small",), "--image-size 16x16"),
    (("pngs", "--image-size", "8x12"), "Resize the images to 16x16"),
    (("pngs", "--devices", "3"), "asks for 3 devices"),
    (("pngs", "--devices", "two"), "positive integer or 'all'"),
]


@pytest.mark.parametrize(("arguments", "message"), CASES)
def test_bad_data_input(inputs, tmp_path, arguments, message):
    output = tmp_path / "maps.npz"
    data, *extra = arguments
    assert_bad_input(
        [*_maps(inputs, data, *extra), "--output", output],
        message,
        output,
        tmp_path,
    )


def test_bad_folder_output(inputs, tmp_path):
    output = tmp_path / "maps"
    assert_bad_input(
        [*_maps(inputs, "pngs"), "--output", tmp_path / "no" / "maps"],
        "does not exist",
        output,
        tmp_path,
    )


def test_output_with_another_suffix(inputs, tmp_path):
    output = tmp_path / "maps.txt"
    assert_bad_input(
        [*_maps(inputs, "pngs"), "--output", output],
        "or name a folder (no suffix, or ending in '/')",
        output,
        tmp_path,
    )


def test_four_channel_model(inputs, tmp_path):
    output = tmp_path / "maps"
    assert_bad_input(
        ["maps", inputs["four"], "--data", inputs["pngs"], "--output", output],
        "The model takes 4 channels; images can be made gray (1) or RGB (3)",
        output,
        tmp_path,
    )


def test_output_folder_that_is_not_ours(inputs):
    """An existing folder with other files: refused, left as it was."""
    folder = inputs["foreign"]
    result = CliRunner().invoke(
        main, [str(a) for a in [*_maps(inputs, "pngs"), "--output", folder]]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not maps of explain-attn" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted(
        p.name for p in folder.parent.iterdir() if not p.name.startswith(".")
    )
