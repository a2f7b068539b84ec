"""`explain-attn train` end to end on tiny data in tmp_path."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from explain_attn import load_model
from explain_attn.cli import main
from explain_attn.data import load_dataset, split_dataset
from explain_attn.models.training import evaluate


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """16x16 PNGs with masks: a bright or a dark square on noise."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label, class_name in enumerate(("dark", "light")):
        (root / "images" / class_name).mkdir(parents=True)
        (root / "masks" / class_name).mkdir(parents=True)
        for index in range(10):
            image = rng.integers(60, 190, (16, 16, 3), dtype=np.uint8)
            mask = np.zeros((16, 16), np.uint8)
            row, column = rng.integers(0, 8, 2)
            mask[row : row + 8, column : column + 8] = 255
            image[mask > 0] = 255 * label
            name = f"{class_name}{index}.png"
            Image.fromarray(image).save(root / "images" / class_name / name)
            Image.fromarray(mask).save(root / "masks" / class_name / name)
    return root


def test_train_on_a_folder_writes_a_loadable_model_and_history(
    image_folder, tmp_path
):
    output = tmp_path / "model.keras"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--architecture",
            "small_convnet",
            "--data",
            str(image_folder),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    # 20 images: 4 held out for testing, 2 of the other 16 for validation.
    assert "Training small_convnet (45,953 parameters) on 14 images" in (
        result.output
    )
    assert "validating on 2, testing on 4" in result.output
    assert "Epoch 2/2" in result.output  # Keras' progress bar.
    assert result.output.strip().splitlines()[-1] == str(output)
    history = json.loads((tmp_path / "model.json").read_text())
    assert len(history["history"]["loss"]) == 2
    assert history["class_names"] == ["dark", "light"]
    assert (history["epochs"], history["batch_size"]) == (2, 8)
    model = load_model(output)
    assert model.name == "small_convnet"
    # The printed accuracy is the model's on the same held-out 20 %.
    test = split_dataset(load_dataset(image_folder), seed=0)[1]
    accuracy = evaluate(model, test)
    assert history["test_accuracy"] == pytest.approx(accuracy)
    assert f"Test accuracy: {accuracy:.4f} (4 images)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.json",
        "model.keras",
        "model.record.npz",
    ]


def test_train_on_an_npz_with_resizing(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        images=rng.integers(0, 256, (10, 12, 12, 3), dtype=np.uint8),
        labels=np.arange(10) % 2,
    )
    output = tmp_path / "baseline.keras"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--architecture",
            "baseline",
            "--data",
            str(path),
            "--image-size",
            "8",
            "--epochs",
            "1",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_model(output).input_shape == (None, 8, 8, 3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "NOWHERE"], "Data not found: 'NOWHERE'"),
        (["--data", "sample", "--limit", "0"], "--limit"),
        (["--data", "sample", "--output", "model.h5"], "must end in '.keras'"),
        (["--architecture", "huge"], "--architecture"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path, monkeypatch, arguments, message
):
    monkeypatch.chdir(tmp_path)
    if "--output" not in arguments:
        arguments = [*arguments, "--output", "model.keras"]
    result = CliRunner().invoke(main, ["train", *arguments])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_train_with_stream_reads_the_folder_batch_by_batch_to_the_same_model(
    image_folder, tmp_path
):
    """``--stream`` trains on the folder decoded batch by batch: the same
    seeded batches, so the same losses and test accuracy as in memory."""
    histories = []
    for stream in ([], ["--stream"]):
        output = tmp_path / f"model{len(histories)}.keras"
        result = CliRunner().invoke(
            main,
            [
                "train",
                "--architecture",
                "baseline",
                "--data",
                str(image_folder),
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--no-record",
                "--output",
                str(output),
                *stream,
            ],
        )
        assert result.exit_code == 0, result.output
        assert "on 14 images" in result.output
        histories.append(json.loads(output.with_suffix(".json").read_text()))
    in_memory, streamed = histories
    np.testing.assert_allclose(
        streamed["history"]["loss"], in_memory["history"]["loss"], rtol=1e-5
    )
    assert streamed["test_accuracy"] == in_memory["test_accuracy"]
    assert streamed["check"] == in_memory["check"]
