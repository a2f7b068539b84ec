"""The demo's trained models ship in the package: a cold cache takes them
without reading the training data; other settings and ``retrain`` train."""

import dataclasses
import json

import numpy as np
import pytest

from explain_attn.report.shipped import SHIPPED_DIRECTORY, find_shipped


def _refuse():
    raise AssertionError("the training split was read: the demo trained")


def _shipped_metas():
    return {
        folder.name.split("-")[0]: json.loads(
            (folder / "meta.json").read_text()
        )
        for folder in SHIPPED_DIRECTORY.glob("*-*")
    }


def test_package_ships_the_demo_pair_small():
    from explain_attn.report.demo import DEMO_ARCHITECTURES

    metas = _shipped_metas()
    assert set(metas) == set(DEMO_ARCHITECTURES.values())
    size = sum(f.stat().st_size for f in SHIPPED_DIRECTORY.rglob("*.*"))
    assert size < 1.5 * 2**20  # two models and their records


def test_cold_cache_takes_the_shipped_models(tmp_path):
    """Fails when the demo's recipe, data or architectures changed since
    the models were made: run ``python -m benchmarks.make_demo_models``."""
    import keras

    from explain_attn.models.saving import load_model

    saved_by = _shipped_metas()["small_convnet"]["settings"]["keras"]
    if _release(keras.__version__) < _release(saved_by):
        pytest.skip(
            f"Keras {keras.__version__} cannot load files saved by Keras "
            f"{saved_by}: the demo trains anew there"
        )
    from explain_attn.report.demo import demo_data, demo_models

    train, test = demo_data(
        "sample", image_size=None, seed=0, spurious_correlation=None
    )
    lines = []
    models = demo_models(
        dataclasses.replace(train, load=_refuse), test, epochs=None, seed=0,
        cache_dir=tmp_path, verbose=0, say=lines.append,
    )  # fmt: skip
    assert [m.training["source"] for m in models] == ["cache", "cache"]
    metas = _shipped_metas()
    for entry in models:
        folder = tmp_path / next(
            p.name for p in tmp_path.iterdir() if p.name.startswith(entry.name)
        )
        cached = json.loads((folder / "meta.json").read_text())
        shipped = metas[entry.name]
        assert cached["model_sha256"] == shipped["model_sha256"]
        assert entry.training["history"] == shipped["history"]
        shipped_folder = next(SHIPPED_DIRECTORY.glob(f"{entry.name}-*"))
        reference = load_model(shipped_folder / "model.keras")
        for mine, theirs in zip(
            entry.model.get_weights(), reference.get_weights(), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)


def _release(version):
    return tuple(int(part) for part in version.split(".")[:2])


def test_older_keras_finds_no_shipped_model():
    """Keras 3.11 cannot deserialize a functional model saved by 3.15: an
    older Keras than the one that saved the entries trains anew."""
    settings = _shipped_metas()["small_convnet"]["settings"]
    major, minor = _release(settings["keras"])
    older = {**settings, "keras": f"{major}.{minor - 1}.0"}
    assert find_shipped("small_convnet", older) is None


def test_other_settings_find_no_shipped_model():
    metas = _shipped_metas()
    settings = metas["small_convnet"]["settings"]
    assert find_shipped("small_convnet", settings) is not None
    # Versions aside: a .keras file loads in the Keras that saved it and
    # in later ones.
    assert find_shipped("small_convnet", {**settings, "keras": "3.99"})
    for change in ({"epochs": 5}, {"seed": 1}, {"devices": 2}):
        assert find_shipped("small_convnet", {**settings, **change}) is None
    assert find_shipped("small_attention", settings) is None


@pytest.fixture
def tiny_data(tmp_path):
    from explain_attn.data import Dataset

    rng = np.random.default_rng(3)
    return Dataset(
        images=rng.random((16, 16, 16, 3), dtype=np.float32),
        labels=np.arange(16) % 2,
        masks=None,
        class_names=["a", "b"],
        name="tiny",
    )


def test_retrain_trains_anew_and_replaces_the_entry(tmp_path, tiny_data):
    from explain_attn.report.cache import train_or_load

    settings = {
        "epochs": 1, "seed": 0, "batch_size": 8, "learning_rate": 1e-3,
        "cache_dir": tmp_path, "verbose": 0,
    }  # fmt: skip
    _, first = train_or_load("small_convnet", tiny_data, **settings)
    _, second = train_or_load("small_convnet", tiny_data, **settings)
    _, again = train_or_load(
        "small_convnet", tiny_data, retrain=True, **settings
    )
    _, last = train_or_load("small_convnet", tiny_data, **settings)
    sources = [info["source"] for info in (first, second, again, last)]
    assert sources == ["trained", "cache", "trained", "cache"]
    assert len(list(tmp_path.iterdir())) == 1
