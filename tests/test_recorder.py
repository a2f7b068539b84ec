"""`AttentionRecorder`: what it writes, checked by independent routes."""

import json

import numpy as np
import pytest
from conftest import IMAGE_SHAPE, recording_model, train_recorded

from explain_attn import AttentionRecorder, attention_maps, metrics
from explain_attn.models.recorder import (
    epochs_to_reach,
    load_record,
    probe_indices,
    record_path,
)
from explain_attn.models.training import train
from explain_attn.report.schema import undeclared

pytestmark = pytest.mark.filterwarnings(
    "ignore::explain_attn.models.training.TrainingWarning"
)

SIZE = IMAGE_SHAPE[0]


@pytest.fixture(scope="module")
def data(recording_data):
    return recording_data


def test_probe_indices_take_the_classes_in_turn():
    labels = np.array([0, 0, 0, 1, 1, 2])
    chosen = probe_indices(labels, 4, seed=0)
    assert chosen == sorted(chosen) and len(set(chosen)) == 4
    assert sorted(labels[chosen].tolist()) == [0, 0, 1, 2]
    assert probe_indices(labels, 10) == list(range(6))
    assert record_path("/a/model.keras").name == "model.record.npz"


@pytest.fixture(scope="module")
def recorded(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "m.record.npz"
    recorder = AttentionRecorder(data, path, num_images=4)
    model, history = train_recorded(data, recorder, validation_data=data)
    return model, history, load_record(path), recorder


def test_record_holds_maps_metrics_and_logs_per_epoch(data, recorded):
    model, history, record, recorder = recorded
    assert record.epoch.tolist() == [0.0, 1.0, 2.0]
    assert record.layers == [
        {"path": "attention", "kind": "attention", "spatial": True}
    ]
    probe = data.images[recorder.indices]
    np.testing.assert_allclose(record.images, probe, atol=1e-3)  # float16
    maps = record.maps[0]
    assert maps.shape == (3, 4, SIZE, SIZE)
    # The last record is the trained model's maps (no BatchNormalization
    # here, so nothing changes after fit).
    expected = attention_maps(model, probe)["attention"]
    np.testing.assert_allclose(maps[-1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        record.metrics[0]["entropy"], [metrics.entropy(m) for m in maps]
    )
    masks = data.masks[recorder.indices]
    np.testing.assert_allclose(
        record.metrics[0]["mass_in_mask"][-1],
        metrics.mass_in_mask(expected, masks),
        rtol=1e-5,
    )
    assert np.isnan(record.logs["loss"][0])
    np.testing.assert_allclose(record.logs["loss"][1:], history.history["loss"])
    predictions = model.predict(probe, verbose=0).argmax(-1)
    assert record.predictions[-1].tolist() == predictions.tolist()
    assert record.meta["seconds"] > 0


def test_every_steps_and_resume(data, tmp_path):
    path = tmp_path / "steps.record.npz"
    recorder = AttentionRecorder(data, path, num_images=2, every_steps=2)
    train(
        recording_model(),
        data,
        epochs=2,
        batch_size=6,
        verbose=0,
        callbacks=[recorder],
    )
    # 24 images in batches of 6: 4 steps per epoch, a record every 2.
    assert load_record(path).epoch.tolist() == [0, 0.5, 1, 1.5, 2]
    assert load_record(path).step.tolist() == [0, 2, 4, 6, 8]

    path = tmp_path / "resumed.record.npz"
    model = recording_model()
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        data.images,
        data.labels,
        epochs=3,
        verbose=0,
        callbacks=[AttentionRecorder(data, path)],
    )
    # Resumed from epoch 1: records after it are dropped, then continued.
    resumed = AttentionRecorder(data, path, resume=True)
    model.fit(
        data.images,
        data.labels,
        epochs=3,
        initial_epoch=1,
        verbose=0,
        callbacks=[resumed],
    )
    assert load_record(path).epoch.tolist() == [0, 1, 2, 3]


def test_epochs_to_reach(recorded):
    _, _, record, _ = recorded
    values = record.logs["val_accuracy"]
    first = next(
        (e for e, v in zip(record.epoch, values, strict=True) if v >= 0.5),
        None,
    )
    assert epochs_to_reach(record, 0.5) == first
    assert epochs_to_reach(record, 1.01) is None
    assert epochs_to_reach(record, 0.0, log="nothing") is None
    probe = record.probe_accuracy
    assert (
        epochs_to_reach(record, probe.max(), log="probe_accuracy")
        == (record.epoch[np.argmax(probe >= probe.max())])
    )


def test_a_report_shows_the_record_beside_a_model(data, recorded, tmp_path):
    from explain_attn import save_model
    from explain_attn.report import render_html, report_from_sources

    model, _, _, recorder = recorded
    attention = tmp_path / "attention.keras"
    save_model(model, attention)
    record_path(attention).write_bytes(recorder.path.read_bytes())
    baseline = tmp_path / "baseline.keras"
    save_model(recording_model(seed=1), baseline)
    npz = tmp_path / "data.npz"
    np.savez(npz, images=data.images, labels=data.labels, masks=data.masks)
    report = report_from_sources(
        str(npz),
        attention_models=[attention],
        baseline_model=baseline,
        num_examples=2,
        faithfulness=False,
        verbose=0,
    )
    assert undeclared(report.data) == []  # training_record's keys too
    section = report.data["training_record"]["models"]
    assert [row["name"] for row in section] == ["attention.keras"]
    assert section[0]["epochs"] == [0.0, 1.0, 2.0]
    assert set(section[0]["epochs_to_reach"]) == {"50%", "70%", "80%", "90%"}
    json.dumps(section)
    html = tmp_path / "report.html"
    render_html(report, html)
    text = html.read_text()
    assert "Attention during training" in text
    assert "Attention maps of attention.keras attention across epochs" in text


def test_the_demo_cache_keeps_each_models_record(data, tmp_path):
    from explain_attn.report.cache import train_or_load

    settings = {
        "validation_data": data,
        "epochs": 1,
        "seed": 0,
        "batch_size": 8,
        "learning_rate": 0.01,
        "cache_dir": tmp_path,
        "verbose": 0,
    }
    _, first = train_or_load("small_attention", data, **settings)
    record = load_record(first["record_file"])
    assert record.epoch.tolist() == [0.0, 1.0]
    assert [layer["path"] for layer in record.layers] == [
        "block2_attention",
        "block3_attention",
    ]
    assert record.meta["check"] == first["check"]
    _, second = train_or_load("small_attention", data, **settings)
    assert second["source"] == "cache"
    assert second["record_file"] == first["record_file"]
    path = tmp_path.glob("small_attention-*/record.npz").__next__()
    path.write_bytes(path.read_bytes()[:-10])  # A truncated record: retrain.
    _, third = train_or_load("small_attention", data, **settings)
    assert third["source"] == "trained"
