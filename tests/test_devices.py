"""Several devices: two logical CPU devices give the one-device results.

Logical devices must be configured before TensorFlow initialises its
devices, so the two-device runs are subprocesses (`run_on_two_devices`).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from explain_attn.devices import make_strategy, run_replicated

TWO_DEVICES = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    """
)


def run_on_two_devices(tmp_path, script, *arguments):
    """Runs ``script`` with two logical CPU devices; its last line, as JSON."""
    path = tmp_path / "two_devices.py"
    path.write_text(TWO_DEVICES + script)
    result = subprocess.run(
        [sys.executable, str(path), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    from explain_attn import build_model
    from explain_attn.data import Dataset
    from explain_attn.devices import make_strategy, strategy_scope
    from explain_attn.explanations import attention_maps, grad_cam
    from explain_attn.explanations.export import export_maps
    from explain_attn.explanations.predict import predict_classes

    strategy = make_strategy("all")
    assert strategy.num_replicas_in_sync == 2
    with strategy_scope(strategy):
        keras.utils.set_random_seed(9)
        model = build_model(
            "small_attention", input_shape=(12, 12, 3), num_classes=3
        )
    images = np.random.default_rng(0).random((7, 12, 12, 3), "float32")
    differences = {}
    for batch_size in (3, 1):  # Batches of 3, 3, 1 and of 1 image.
        one = attention_maps(model, images, batch_size=batch_size)
        two = attention_maps(
            model, images, batch_size=batch_size, strategy=strategy
        )
        for path in one:
            differences[f"{path}@{batch_size}"] = float(
                np.abs(one[path] - two[path]).max()
            )
        differences[f"grad_cam@{batch_size}"] = float(np.abs(
            grad_cam(model, images, batch_size=batch_size)
            - grad_cam(
                model, images, batch_size=batch_size, strategy=strategy
            )
        ).max())
        differences[f"predictions@{batch_size}"] = int((
            predict_classes(model, images, batch_size=batch_size)
            != predict_classes(
                model, images, batch_size=batch_size, strategy=strategy
            )
        ).sum())
    dataset = Dataset(images, np.arange(7) % 3, None, ("a", "b", "c"))
    out = sys.argv[1]
    export_maps(model, dataset, out + "/one", methods=["grad_cam"],
                batch_size=4)
    export_maps(model, dataset, out + "/two", methods=["grad_cam"],
                batch_size=4, strategy=strategy)
    print(json.dumps(differences))
    """
)


def test_two_devices_give_the_one_device_results(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    differences = run_on_two_devices(tmp_path, SCRIPT, outputs)
    assert len(differences) == 8  # 2 layers, Grad-CAM, predictions; x 2.
    for key, value in differences.items():
        assert value <= 1e-5, (key, value)
    for name in ("map_0", "map_1", "grad_cam", "predictions", "labels"):
        np.testing.assert_allclose(
            np.load(outputs / "one" / f"{name}.npy"),
            np.load(outputs / "two" / f"{name}.npy"),
            atol=1e-5,
            err_msg=name,
        )
    manifest = json.loads(Path(outputs / "two" / "manifest.json").read_text())
    assert manifest["count"] == 7


def test_one_device_means_no_strategy():
    assert make_strategy(None) is None
    assert make_strategy("1") is None
    assert make_strategy(1) is None


@pytest.mark.parametrize("devices", ["0", 0, -2, "two", 1.5, True])
def test_bad_device_counts(devices):
    with pytest.raises(ValueError, match="positive integer or 'all'"):
        make_strategy(devices)


def test_more_devices_than_the_machine_has():
    with pytest.raises(ValueError, match=r"asks for 64 devices .* has \d"):
        make_strategy(64)


def test_run_replicated_without_a_strategy_calls_the_function():
    assert run_replicated(None, lambda a, b: a + b, 2, 3) == 5


TRAINING = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import keras
    import numpy as np
    from explain_attn import build_model, load_model
    from explain_attn.cli import main
    from explain_attn.devices import make_strategy
    from explain_attn.models.training import evaluate, train, train_architecture

    out = Path(sys.argv[1])
    strategy = make_strategy(2)
    rng = np.random.default_rng(0)
    images = rng.random((32, 16, 16, 3), "float32")
    labels = np.arange(32) % 3
    images[labels == 1, 4:12, 4:12] *= 0.2  # Something to learn.
    validation = (rng.random((10, 16, 16, 3), "float32"), np.arange(10) % 3)
    runs = {}
    for name, chosen in (("one", None), ("two", strategy)):
        model, history = train_architecture(
            "small_attention", (images, labels), validation_data=validation,
            epochs=2, batch_size=8, verbose=0, strategy=chosen,
        )
        runs[name] = (model, history)
    (one, first), (two, second) = runs["one"], runs["two"]
    result = {
        "weights": max(
            float(np.abs(a - b).max())
            for a, b in zip(one.get_weights(), two.get_weights())
        ),
        "scores": float(np.abs(
            one.predict(images, verbose=0) - two.predict(images, verbose=0)
        ).max()),
        "history": {
            key: float(np.abs(np.subtract(
                first.history[key], second.history[key])).max())
            for key in first.history
        },
        "accuracy": [evaluate(one, (images, labels)),
                     evaluate(two, (images, labels))],
        "checks": [first.check.as_dict(), second.check.as_dict()],
        "synchronized": [
            layer.get_config()["synchronized"] for layer in two.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ],
    }
    try:  # A first batch of 7 cannot be split into equal halves.
        train(two, (images, labels), epochs=1, batch_size=7,
              strategy=strategy)
    except ValueError as error:
        result["odd_batch"] = str(error)
    outside = build_model("small_convnet", input_shape=(16, 16, 3),
                          num_classes=3)
    try:
        train(outside, (images, labels), epochs=1, strategy=strategy)
    except ValueError as error:
        result["outside"] = str(error)
    everything = np.concatenate([images, rng.random((8, 16, 16, 3))])
    np.savez(out / "data.npz", images=everything,
             labels=np.arange(40) % 3)
    for devices in ("1", "2"):
        main(["train", "--architecture", "small_attention", "--data",
              str(out / "data.npz"), "--epochs", "2", "--batch-size", "8",
              "--validation-split", "0.25", "--devices", devices,
              "--output", str(out / f"model{devices}.keras")],
             standalone_mode=False)
    records = [json.loads((out / f"model{d}.json").read_text())
               for d in ("1", "2")]
    cli = [load_model(out / f"model{d}.keras") for d in ("1", "2")]
    result["cli"] = {
        "records": records,
        "scores": float(np.abs(cli[0].predict(everything, verbose=0)
                               - cli[1].predict(everything, verbose=0)).max()),
    }
    print(json.dumps(result))
    """
)


def test_training_on_two_devices_gives_the_one_device_model(tmp_path):
    """Global batches of 8 split 4 + 4. Measured (API): weights within
    3.2e-6, softmax scores within 2.1e-7, losses within 1.2e-7, equal
    accuracies and checks; float differences only (synchronised
    BatchNormalization computes the variance as E[x^2] - E[x]^2, and the
    replicas sum their gradients in another order)."""
    result = run_on_two_devices(tmp_path, TRAINING, tmp_path)
    assert result["weights"] <= 1e-4, result["weights"]
    assert result["scores"] <= 1e-5, result["scores"]
    for key, value in result["history"].items():
        assert value <= 1e-5, (key, value)
    assert set(result["history"]) == {
        "loss", "accuracy", "val_loss", "val_accuracy"
    }  # fmt: skip
    one, two = result["accuracy"]
    assert one == two and one > 1 / 3
    assert result["checks"][0] == result["checks"][1]
    assert result["synchronized"] == [False] * 3  # Restored after fit.
    assert (
        "was not built in the scope of the MirroredStrategy"
        in (result["outside"])
    )
    assert result["odd_batch"].startswith(
        "Batches of 7 of 32 training images do not split across 2 devices"
    )
    first, second = result["cli"]["records"]
    assert (first["devices"], second["devices"]) == (1, 2)
    # 31 training images: 24 train in 3 batches of 8, and the 7 validation
    # images come in a batch of 6 (split 3 + 3) and one (split 1 + 0).
    assert (first["training_images"], first["validation_images"]) == (24, 7)
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["check"] == second["check"]
    for key, values in first["history"].items():
        np.testing.assert_allclose(
            values, second["history"][key], atol=1e-5, err_msg=key
        )
    # Measured 8.5e-5: Adam divides by the root of tiny second moments,
    # which magnifies the float differences of the gradients.
    assert result["cli"]["scores"] <= 1e-3


REPORT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from explain_attn.cli import main

    data, attention, baseline, out = sys.argv[1:]
    for devices in ("1", "2"):
        main(["report", "--data", data, "--attention-model", attention,
              "--baseline-model", baseline, "--num-examples", "3",
              "--faithfulness", "full", "--devices", devices,
              "--output", str(Path(out) / f"report{devices}.html")],
             standalone_mode=False)
    print(json.dumps([
        json.loads((Path(out) / f"report{d}.json").read_text())
        for d in ("1", "2")
    ]))
    """
)


def _differences(one, two, path=""):
    """``(largest float difference, paths of other differences)``."""
    if isinstance(one, dict) and isinstance(two, dict):
        pairs = [(one.get(k), two.get(k), f"{path}/{k}") for k in one | two]
    elif (
        isinstance(one, list)
        and isinstance(two, list)
        and (len(one) == len(two))
    ):
        pairs = [
            (a, b, f"{path}[{i}]")
            for i, (a, b) in enumerate(zip(one, two, strict=True))
        ]
    elif isinstance(one, float) and isinstance(two, int | float):
        return abs(one - two), []
    else:
        return 0.0, [] if one == two else [path]
    largest, others = 0.0, []
    for a, b, where in pairs:
        difference, paths = _differences(a, b, where)
        largest, others = max(largest, difference), others + paths
    return largest, others


def test_report_on_two_devices_gives_the_one_device_numbers(
    report_inputs, tmp_path
):
    """Every number of ``report.json`` (evaluation, gallery, channel and
    faithfulness sections) of ``explain-attn report --devices 2``; measured:
    equal to the one-device report's, to the last bit, on 12 images."""
    one, two = run_on_two_devices(
        tmp_path, REPORT, report_inputs["data"], report_inputs["attention"],
        report_inputs["baseline"], tmp_path,
    )  # fmt: skip
    assert (one["settings"]["devices"], two["settings"]["devices"]) == (1, 2)
    assert "faithfulness" in one and one["gallery"]
    largest, others = _differences(one, two)
    assert others == ["/settings/devices"]
    assert largest <= 1e-5
