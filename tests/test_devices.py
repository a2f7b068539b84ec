"""Several devices: two logical CPU devices give the one-device results.

Logical devices must be configured before TensorFlow initialises its
devices, so the two-device run is a subprocess.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from explain_attn.devices import make_strategy, run_replicated

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
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
    script = tmp_path / "two_devices.py"
    script.write_text(SCRIPT)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), str(outputs)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    differences = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(differences) == 8  # 2 layers, Grad-CAM, predictions; x 2.
    for key, value in differences.items():
        assert value <= 1e-5, (key, value)
    import numpy as np

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
