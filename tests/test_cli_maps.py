"""The `layers` and `maps` commands end to end on tiny saved models."""

import numpy as np
from click.testing import CliRunner

from explain_attn import attention_maps, grad_cam, load_model
from explain_attn.cli import main
from explain_attn.data import load_dataset


def test_layers_lists_attention_and_grad_cam_layers(report_inputs):
    result = CliRunner().invoke(
        main, ["layers", str(report_inputs["attention"])]
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Model 'small_attention': ")
    attention_start = lines.index("Attention modules: 2 (2 attention)")
    cam_start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("Grad-CAM candidates")
    )
    attention_lines = [
        line.split() for line in lines[attention_start + 1 : cam_start]
    ]
    assert attention_lines[0] == ["path", "kind", "shape", "range", "found",
                                  "by"]  # fmt: skip
    assert attention_lines[1][:5] == [
        "block2_attention", "attention", "(8,", "8,", "1)",
    ]  # fmt: skip
    assert attention_lines[2][:2] == ["block3_attention", "attention"]
    cam_lines = lines[cam_start + 1 :]
    assert cam_lines[-1].split() == [
        "*", "block3_attention", "SpatialAttention", "(4,", "4,", "96)",
    ]  # fmt: skip
    assert sum(line.startswith("*") for line in cam_lines) == 1


def test_layers_on_a_model_without_attention(report_inputs):
    result = CliRunner().invoke(
        main, ["layers", str(report_inputs["baseline"])]
    )
    assert result.exit_code == 0
    assert "Attention modules: none found" in result.output


def test_maps_writes_the_maps_labels_and_predictions(report_inputs, tmp_path):
    output = tmp_path / "maps.npz"
    result = CliRunner().invoke(
        main,
        [
            "maps",
            str(report_inputs["attention"]),
            "--data",
            str(report_inputs["data"]),
            "--layer",
            "*3_attention",
            "--grad-cam",
            "--limit",
            "6",
            "--output",
            str(output),
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(output)
    stored = np.load(output)
    data = load_dataset(str(report_inputs["data"]), limit=6)
    model = load_model(report_inputs["attention"])
    assert stored["layer_names"].tolist() == ["block3_attention"]
    images = data.images
    assert len(images) == 6
    np.testing.assert_array_equal(stored["labels"], data.labels)
    expected = attention_maps(model, images, layers="block3_attention")
    np.testing.assert_allclose(
        stored["map_0"], expected["block3_attention"], atol=1e-6
    )
    np.testing.assert_array_equal(
        stored["predictions"], model.predict(images, verbose=0).argmax(-1)
    )
    np.testing.assert_allclose(stored["grad_cam"], grad_cam(model, images))
    assert str(stored["grad_cam_layer"]) == "block3_attention"
    assert stored["class_names"].tolist()[0] == "plain"
