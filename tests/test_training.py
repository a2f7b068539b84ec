"""Seeded training and evaluation on tiny data."""

import keras
import numpy as np
import pytest

from explain_attn import build_model
from explain_attn.data import Dataset
from explain_attn.models.training import evaluate, train, train_architecture

# These runs are a few steps on tiny data: they test the mechanics, and some
# models learn nothing, which `train` reports as a TrainingWarning (its own
# tests are in test_recipe.py).
pytestmark = pytest.mark.filterwarnings(
    "ignore::explain_attn.models.training.TrainingWarning"
)


def _bright_or_dark(count=64, size=8, seed=0):
    """Class 1 images are brighter: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = rng.random((count, size, size, 3), dtype=np.float32) * 0.5
    images += 0.5 * labels[:, None, None, None]
    return Dataset(images, labels, None, ("dark", "bright"), "tiny")


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def test_loss_decreases_and_history_has_one_value_per_epoch():
    history = train(
        _tiny_model(),
        _bright_or_dark(),
        epochs=8,
        learning_rate=0.05,
        batch_size=16,
        verbose=0,
    )
    losses = history.history["loss"]
    assert len(losses) == 8 and len(history.history["accuracy"]) == 8
    assert losses[-1] < 0.7 * losses[0]


def test_two_runs_give_identical_weights():
    weights = []
    for _ in range(2):
        model = _tiny_model(seed=3)
        train(model, _bright_or_dark(), epochs=2, batch_size=8, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)
    other = _tiny_model(seed=3)
    train(other, _bright_or_dark(), epochs=2, batch_size=8, seed=1, verbose=0)
    assert not np.array_equal(other.weights[0].numpy(), weights[0][0])


def test_training_does_not_change_the_dataset():
    dataset = _bright_or_dark()
    images, labels = dataset.images.copy(), dataset.labels.copy()
    train(_tiny_model(), dataset, epochs=1, verbose=0)
    np.testing.assert_array_equal(dataset.images, images)
    np.testing.assert_array_equal(dataset.labels, labels)


def test_compiles_like_the_tutorial_and_keeps_a_users_compile():
    model = _tiny_model()
    train(model, _bright_or_dark(), epochs=1, verbose=0)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss == "sparse_categorical_crossentropy"
    compiled = _tiny_model()
    compiled.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = train(compiled, _bright_or_dark(), epochs=1, verbose=0)
    assert isinstance(compiled.optimizer, keras.optimizers.SGD)
    assert "accuracy" not in history.history


def test_validation_and_evaluate_agree():
    train_data = _bright_or_dark()
    test_data = _bright_or_dark(count=20, seed=1)
    model = _tiny_model()
    history = train(
        model,
        train_data,
        validation_data=test_data,
        epochs=3,
        learning_rate=0.05,
        batch_size=16,
        verbose=0,
    )
    assert len(history.history["val_accuracy"]) == 3
    accuracy = evaluate(model, test_data)
    expected = (
        model.predict(test_data.images, verbose=0).argmax(-1)
        == test_data.labels
    ).mean()
    assert accuracy == pytest.approx(expected)
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1])


def test_train_architecture_builds_for_the_data():
    data = _bright_or_dark(count=16, size=16)
    model, history = train_architecture(
        "small_convnet", data, epochs=1, batch_size=8, verbose=0
    )
    assert model.input_shape == (None, 16, 16, 3)
    assert model.output_shape == (None, 2)
    assert model.layers[1].name == "input_standardization"
    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": -1}, "batch_size=-1"),
        ({"learning_rate": 0.0}, "learning_rate=0.0"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(_tiny_model(), _bright_or_dark(), verbose=0, **kwargs)


def test_model_and_data_must_fit():
    with pytest.raises(ValueError, match=r"expects inputs \(8, 8, 3\).*16"):
        train(_tiny_model(), _bright_or_dark(size=16), verbose=0)
    three_classes = Dataset(
        np.zeros((3, 8, 8, 3)), [0, 1, 2], None, ("a", "b", "c")
    )
    with pytest.raises(ValueError, match="num_classes=3"):
        train(_tiny_model(), three_classes, verbose=0)
    with pytest.raises(TypeError, match="Dataset"):
        train(_tiny_model(), np.zeros((2, 8, 8, 3)), verbose=0)
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        train(_tiny_model(), (np.zeros((2, 8, 8, 3)), [0.5, 1]), verbose=0)
    with pytest.raises(TypeError, match="keras.Model"):
        evaluate("model.keras", _bright_or_dark())


def test_build_model_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="small_attention"):
        train_architecture("tiny", _bright_or_dark(), verbose=0)
    assert build_model("small_attention", num_classes=4).count_params() > 0
