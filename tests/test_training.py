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


# ------------------------------------------------------------- the recipe


def _low_contrast(count=48, size=8, seed=0):
    """Images near 0.5 with a variance of about 0.005, as BCCD crops."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = 0.5 + 0.07 * rng.standard_normal((count, size, size, 3))
    images[labels == 1, :4] += 0.05
    return np.clip(images, 0, 1).astype(np.float32), labels


def _bn_model(channels=3, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="bn_model")


def test_standardize_inputs_adapts_on_the_training_images():
    from explain_attn.models.training import standardize_inputs

    images, labels = _low_contrast()
    model = _bn_model()
    before = [w.copy() for w in model.get_weights()]
    standardized = standardize_inputs(model, (images, labels))
    layer = standardized.get_layer("input_standardization")
    out = keras.Model(standardized.input, layer.output).predict(
        images, verbose=0
    )
    flat = out.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(flat.std(0), 1, atol=1e-3)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # The original is unchanged.
    with pytest.raises(ValueError, match="already has a layer"):
        standardize_inputs(standardized, (images, labels))


def test_recalibration_gives_the_inputs_mean_and_variance():
    from explain_attn.models.training import recalibrate_batch_norm

    images, labels = _low_contrast(count=37)  # 37 = 16 + 16 + 5.
    model = _bn_model()
    layer = model.get_layer("bn")
    assert recalibrate_batch_norm(model, (images, labels), batch_size=16) == 1
    conv = keras.Model(model.input, model.get_layer("conv").output)
    values = conv.predict(images, verbose=0).reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(layer.moving_mean.numpy(), values.mean(0),
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(layer.moving_variance.numpy(), values.var(0),
                               rtol=1e-4, atol=1e-7)  # fmt: skip
    assert layer.momentum == 0.99
    layer.trainable = False  # A frozen layer keeps its statistics.
    kept = layer.moving_variance.numpy().copy()
    assert recalibrate_batch_norm(model, (images * 0.5, labels)) == 0
    np.testing.assert_array_equal(layer.moving_variance.numpy(), kept)


def test_check_names_a_model_whose_two_modes_disagree():
    from explain_attn.models.training import TrainingWarning, check_training

    images, labels = _low_contrast()
    model = _bn_model()
    # What 444 steps at momentum 0.99 leave: a variance far from the data's.
    model.get_layer("bn").moving_variance.assign(np.full(4, 50.0))
    check = check_training(model, (images, labels), {"accuracy": [1.0]})
    assert check.training_mode_accuracy == 1.0
    assert check.majority_rate == 0.5
    assert check.inference_accuracy < 0.95
    assert any("inference mode" in p for p in check.problems)
    assert any("majority class" in p for p in check.problems) == (
        check.inference_accuracy <= 0.5
    )
    with pytest.warns(TrainingWarning, match="majority class"):
        train(_bn_model(), (images, labels), epochs=1, batch_size=48,
              learning_rate=1e-6, verbose=0)  # fmt: skip


def test_the_recipe_learns_low_contrast_grayscale_arrays():
    from explain_attn.models.training import standardize_inputs

    images, labels = _low_contrast(count=64)
    gray = images[..., :1]
    model = standardize_inputs(_bn_model(channels=1), (gray, labels))
    history = train(model, (gray, labels), epochs=15, batch_size=8,
                    learning_rate=0.02, verbose=0)  # fmt: skip
    assert history.check.problems == ()
    assert history.check.inference_accuracy >= 0.9
    assert evaluate(model, (gray, labels)) == history.check.inference_accuracy
