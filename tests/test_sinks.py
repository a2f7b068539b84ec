"""The attention record reaches the trackers: TensorBoard's event files are
read back and compared with the ``.npz`` record; a failing tracker is
dropped with one warning while training and the file go on; the command
line's tracker flags fail in one line without their package or folder."""

import importlib.util
import io

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMAGE_SHAPE, train_recorded
from PIL import Image

from explain_attn import AttentionRecorder
from explain_attn.cli import main
from explain_attn.models.recorder import load_record
from explain_attn.models.sinks import SinkWarning, TensorBoardSink

pytestmark = pytest.mark.filterwarnings(
    "ignore::explain_attn.models.training.TrainingWarning"
)

SIZE = IMAGE_SHAPE[0]
PROBE = 4


@pytest.fixture(scope="module")
def data(recording_data):
    return recording_data


def _events(folder):
    """tag -> {step: (value tensor, plugin)} from every event file."""
    import tensorflow as tf

    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                array = tf.make_ndarray(value.tensor)
                found.setdefault(value.tag, {})[event.step] = (array, plugin)
    return found


@pytest.fixture(scope="module")
def logged(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    path = folder / "m.record.npz"
    recorder = AttentionRecorder(
        data, path, num_images=PROBE, sinks=[TensorBoardSink(folder)]
    )
    _, history = train_recorded(data, recorder, validation_data=data)
    return _events(folder / "attention"), load_record(path), history


def test_tensorboard_images_one_tag_per_layer_per_epoch(logged, data):
    events, record, _ = logged
    images = events["attention/attention"]
    assert sorted(images) == [0, 1, 2]  # step = epoch, 0 before training
    for array, plugin in images.values():
        assert plugin == "images"
        width, height, *pngs = array  # TF's image summary layout
        assert (int(width), int(height), len(pngs)) == (SIZE, SIZE, PROBE)
        first = np.asarray(Image.open(io.BytesIO(pngs[0])))
        assert first.shape == (SIZE, SIZE, 3)
        # The mask's inner boundary is drawn in the outline's green.
        mask = record.masks[0]
        assert mask[2, 3] and tuple(first[2, 3]) == (0, 255, 51)
        # Inside, the map is overlaid: not the probe image's gray.
        gray = record.images[0][5, 5].mean()
        assert not np.allclose(first[5, 5] / 255, gray, atol=0.02)


def test_tensorboard_scalars_are_the_records_numbers(logged):
    events, record, history = logged
    mass = events["metrics/attention/mass_in_mask"]
    for r, epoch in enumerate(record.epoch):
        expected = np.nanmean(record.metrics[0]["mass_in_mask"][r])
        assert float(mass[int(epoch)][0]) == pytest.approx(expected)
        accuracy = events["probe_accuracy"][int(epoch)][0]
        assert float(accuracy) == pytest.approx(record.probe_accuracy[r])
    for epoch, loss in enumerate(history.history["loss"], start=1):
        assert float(events["logs/loss"][epoch][0]) == pytest.approx(loss)


def test_tensorboard_histogram_of_gate_values(logged):
    events, record, _ = logged
    for r, epoch in enumerate(record.epoch):
        buckets, plugin = events["gates/attention"][int(epoch)]
        assert plugin == "histograms"
        gates = record.maps[0][r]  # (P, h, w) in [0, 1]
        assert buckets[:, 2].sum() == pytest.approx(gates.size)
        assert buckets[0, 0] == pytest.approx(gates.min(), abs=1e-6)
        assert buckets[-1, 1] == pytest.approx(gates.max(), abs=1e-6)


class _Broken:
    def __init__(self):
        self.calls = 0
        self.closed = False

    def write(self, entry):
        self.calls += 1
        raise ConnectionError("tracker unreachable")

    def close(self, files=()):
        self.closed = True


def test_a_failing_tracker_is_dropped_with_one_warning(data, tmp_path):
    broken = _Broken()
    path = tmp_path / "m.record.npz"
    recorder = AttentionRecorder(data, path, num_images=PROBE, sinks=[broken])
    with pytest.warns(SinkWarning, match="tracker unreachable") as caught:
        train_recorded(data, recorder)
    assert len([w for w in caught if w.category is SinkWarning]) == 1
    assert broken.calls == 1  # dropped after its first failure
    assert load_record(path).epoch.tolist() == [0.0, 1.0, 2.0]  # kept


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("cli") / "set.npz"
    np.savez(
        path,
        images=rng.integers(0, 256, (12, 12, 12, 3), dtype=np.uint8),
        labels=np.arange(12) % 2,
    )
    return path


def _train(npz, folder, *extra):
    arguments = [
        "train",
        "--architecture",
        "small_attention",
        "--data",
        str(npz),
        "--epochs",
        "1",
        "--record-images",
        "2",
        "--validation-split",
        "0",
        "--output",
        str(folder / "m.keras"),
        *extra,
    ]
    return CliRunner().invoke(main, arguments)


def test_cli_tensorboard_beside_keras_logs(npz, tmp_path):
    result = _train(npz, tmp_path, "--tensorboard", str(tmp_path / "logs"))
    assert result.exit_code == 0, result.output
    events = _events(tmp_path / "logs" / "attention")
    layers = [tag for tag in events if tag.startswith("attention/")]
    assert len(layers) == 2  # small_attention: block2 and block3
    assert all(sorted(events[tag]) == [0, 1] for tag in layers)
    assert sorted(events["logs/loss"]) == [1]  # Keras' logs, per epoch
    keras_logs = list((tmp_path / "logs").glob("train/events.out.tfevents.*"))
    # keras.callbacks.TensorBoard needs the tensorboard package to write.
    assert bool(keras_logs) == bool(importlib.util.find_spec("tensorboard"))


@pytest.mark.parametrize("flag", ["--wandb", "--mlflow"])
def test_cli_tracker_without_its_package_names_the_extra(npz, tmp_path, flag):
    name = flag[2:]
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed: the missing-extra path is moot")
    result = _train(npz, tmp_path, flag)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"explain-attn[{name}]" in lines[0]
    assert not (tmp_path / "m.keras").exists()


def test_cli_unwritable_log_dir_is_one_line(npz, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = _train(npz, tmp_path, "--tensorboard", str(blocker / "logs"))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--tensorboard" in lines[0]
    assert not (tmp_path / "m.keras").exists()


def test_cli_tracker_without_record_is_refused(npz, tmp_path):
    result = _train(
        npz, tmp_path, "--tensorboard", str(tmp_path / "l"), "--no-record"
    )
    assert result.exit_code == 2
    assert "--no-record" in result.output.strip()


def _installed(name):
    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(
    not _installed("mlflow"),
    reason="mlflow is not installed (extra [mlflow]; not in the test extra: "
    "about 18 MB of wheels and 60 dependencies)",
)
def test_mlflow_receives_metrics_images_and_the_record(
    data, tmp_path, monkeypatch
):
    import mlflow

    # MLflow 3 keeps its local file store only when asked (else a database).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from explain_attn.models.sinks import MLflowSink

    uri = (tmp_path / "mlruns").as_uri()
    sink = MLflowSink(uri)
    run_id = sink.run.info.run_id
    path = tmp_path / "m.record.npz"
    recorder = AttentionRecorder(data, path, num_images=PROBE, sinks=[sink])
    train_recorded(data, recorder)
    record = load_record(path)
    client = mlflow.tracking.MlflowClient(uri)
    history = client.get_metric_history(run_id, "probe_accuracy")
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history] == pytest.approx(
        record.probe_accuracy.tolist()
    )
    artifacts = _artifact_paths(client, run_id)
    assert "m.record.npz" in artifacts
    assert any("attention" in name for name in artifacts)


def _artifact_paths(client, run_id, folder=None):
    paths = []
    for item in client.list_artifacts(run_id, folder):
        if item.is_dir:
            paths += _artifact_paths(client, run_id, item.path)
        else:
            paths.append(item.path)
    return paths


@pytest.mark.skipif(
    not _installed("wandb"),
    reason="wandb is not installed (extra [wandb]; not in the test extra: "
    "about 27 MB of wheels)",
)
def test_wandb_offline_receives_a_table_per_record(data, tmp_path):
    import json

    from explain_attn.models.sinks import WandbSink

    sink = WandbSink(directory=tmp_path)
    path = tmp_path / "m.record.npz"
    recorder = AttentionRecorder(data, path, num_images=PROBE, sinks=[sink])
    train_recorded(data, recorder, epochs=1)
    tables = sorted(tmp_path.rglob("attention_*.table.json"))
    assert len(tables) == 2  # before training and after the epoch
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["image", "label", "prediction", "attention"]
    assert len(table["data"]) == PROBE
    record = load_record(path)
    assert [row[1] for row in table["data"]] == record.labels.tolist()
