"""Shared fixtures: tiny seeded models with named layers, and NumPy formulas.

Every model here has a few hundred parameters and is built once per test
session; tests must not train or otherwise change them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from explain_attn.attention.layers import (  # noqa: E402
    CBAM,
    ChannelAttention,
    SpatialAttention,
)

IMAGE_SHAPE = (12, 12, 3)


def sigmoid(values):
    return 1.0 / (1.0 + np.exp(-values))


def correlate_same(planes, kernel, bias):
    """2-D cross-correlation with zero "same" padding, written out in NumPy.

    Args:
        planes: ``(N, H, W, C_in)``.
        kernel: ``(k, k, C_in, C_out)``.
        bias: ``(C_out,)``.

    Returns:
        ``(N, H, W, C_out)`` float64.
    """
    size = kernel.shape[0]
    pad = size // 2
    padded = np.pad(
        planes.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0))
    )
    height, width = planes.shape[1:3]
    out = np.zeros((*planes.shape[:3], kernel.shape[-1]))
    for row in range(size):
        for column in range(size):
            window = padded[:, row : row + height, column : column + width, :]
            out += window @ kernel[row, column].astype(np.float64)
    return out + bias


def numpy_spatial_map(features, layer):
    """The tutorial's formula with the layer's own kernel and bias."""
    kernel, bias = (w.numpy() for w in layer.conv.weights)
    pooled = np.concatenate(
        [
            features.mean(axis=-1, keepdims=True),
            features.max(axis=-1, keepdims=True),
        ],
        axis=-1,
    )
    return sigmoid(correlate_same(pooled, kernel, bias))[..., 0]


def numpy_channel_weights(features, layer):
    """CBAM's channel weights with the layer's own perceptron weights."""
    hidden_kernel, hidden_bias, output_kernel, output_bias = (
        w.numpy().astype(np.float64) for w in layer.weights
    )

    def perceptron(vectors):
        hidden = np.maximum(vectors @ hidden_kernel + hidden_bias, 0)
        return hidden @ output_kernel + output_bias

    features = features.astype(np.float64)
    average = features.mean(axis=(1, 2))
    maximum = features.max(axis=(1, 2))
    return sigmoid(perceptron(average) + perceptron(maximum))


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(0)
    return rng.random((10, *IMAGE_SHAPE), dtype=np.float32)


@pytest.fixture(scope="session")
def layered_model():
    """conv -> spatial -> cbam -> channel -> gap -> predictions (softmax)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = SpatialAttention(3, name="spatial")(x)
    x = CBAM(2, 3, name="cbam")(x)
    x = ChannelAttention(2, name="channel")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="layered")


@pytest.fixture(scope="session")
def nested_gate_model():
    """A plain-Keras CBAM-style gate inside a nested functional model.

    stem -> inner(features -> gate (sigmoid, 1 channel) -> apply) -> gap ->
    logits -> softmax (a separate Activation layer).
    """
    keras.utils.set_random_seed(2)
    inner_inputs = keras.Input((12, 12, 4), name="inner_image")
    features = keras.layers.Conv2D(
        4, 3, padding="same", activation="relu", name="features"
    )(inner_inputs)
    gate = keras.layers.Conv2D(
        1, 5, padding="same", activation="sigmoid", name="gate"
    )(features)
    applied = keras.layers.Multiply(name="apply")([features, gate])
    inner = keras.Model(inner_inputs, applied, name="inner")

    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(4, 1, name="stem")(inputs)
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="outer")


XSS_CLASS = "<script>alert(1)</script>"
REPORT_SHAPE = (16, 16, 3)


@pytest.fixture(scope="session")
def report_inputs(tmp_path_factory):
    """Two tiny saved models and an .npz dataset with masks for reports.

    A class name carries a script payload, to check escaping.
    """
    from explain_attn import build_model, save_model

    folder = tmp_path_factory.mktemp("report_inputs")
    keras.utils.set_random_seed(7)
    paths = {}
    for role, architecture in (
        ("attention", "small_attention"),
        ("baseline", "small_convnet"),
    ):
        model = build_model(
            architecture, input_shape=REPORT_SHAPE, num_classes=2
        )
        paths[role] = folder / f"{role}.keras"
        save_model(model, paths[role])
    rng = np.random.default_rng(8)
    count = 12
    images = rng.random((count, *REPORT_SHAPE), dtype=np.float32)
    masks = np.zeros((count, 16, 16), bool)
    for index in range(count):
        row, column = rng.integers(0, 10, size=2)
        masks[index, row : row + 6, column : column + 6] = True
        images[index][masks[index]] *= 0.3
    labels = np.arange(count) % 2
    paths["data"] = folder / "data.npz"
    np.savez(
        paths["data"],
        images=images,
        labels=labels,
        masks=masks,
        class_names=np.array(["plain", XSS_CLASS]),
    )
    paths["data_without_masks"] = folder / "no_masks.npz"
    np.savez(
        paths["data_without_masks"],
        images=images,
        labels=labels,
        class_names=np.array(["plain", XSS_CLASS]),
    )
    return paths


def tiny_report_arguments(report_inputs):
    """`report_from_sources`' keywords of the tiny report (`tiny_report`)."""
    return {
        "data": str(report_inputs["data"]),
        "attention_models": [str(report_inputs["attention"])],
        "baseline_model": str(report_inputs["baseline"]),
        "num_examples": 3,
        "seed": 0,
        "verbose": 0,
    }


@pytest.fixture(scope="session")
def tiny_report_and_builds(report_inputs, tmp_path_factory):
    """`tiny_report`, and ``(model, count)`` of the flat graphs built while
    the report was built (`tests/test_model_state.py`)."""
    import explain_attn.graph as graph
    from explain_attn.report import render_html, report_from_sources, write_json

    builds, build = {}, graph._flatten

    def counting(model, check=False):
        if not check:  # The re-check of a traced graph is the same build.
            builds[id(model)] = (model, builds.get(id(model), (0, 0))[1] + 1)
        return build(model, check)

    graph._flatten = counting
    try:
        report = report_from_sources(**tiny_report_arguments(report_inputs))
    finally:
        graph._flatten = build
    folder = tmp_path_factory.mktemp("report")
    render_html(report, folder / "report.html")
    write_json(report, folder / "report.json")
    paths = folder / "report.html", folder / "report.json"
    return (report, *paths), list(builds.values())


@pytest.fixture(scope="session")
def tiny_report(tiny_report_and_builds):
    """A report built and rendered once from `report_inputs`."""
    return tiny_report_and_builds[0]


@pytest.fixture(scope="session")
def report_command(report_inputs):
    """``explain-attn report`` arguments for the `report_inputs` models."""
    return [
        "report",
        "--data",
        str(report_inputs["data"]),
        "--attention-model",
        str(report_inputs["attention"]),
        "--baseline-model",
        str(report_inputs["baseline"]),
    ]


@pytest.fixture(scope="session")
def recording_data():
    """24 images of `IMAGE_SHAPE` for recorder and tracker tests: dim noise,
    class 1 brighter inside the same rectangular mask, classes alternating.
    """
    from explain_attn.data import Dataset

    rng = np.random.default_rng(0)
    labels = np.arange(24) % 2
    images = rng.random((24, *IMAGE_SHAPE), dtype=np.float32) * 0.3
    masks = np.zeros((24, *IMAGE_SHAPE[:2]), bool)
    masks[:, 2:8, 3:9] = True
    images[masks & (labels[:, None, None] == 1)] += 0.6
    return Dataset(images, labels, masks, ("dark", "bright"), "tiny")


def recording_model(seed=0):
    """A new seeded conv + `SpatialAttention` ("attention") + softmax model
    of `IMAGE_SHAPE` inputs and two classes, for tests that train it."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = SpatialAttention(3, name="attention")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_attention")


def train_recorded(data, recorder, *, model=None, **options):
    """Trains ``model`` (else a new `recording_model`) on ``data`` with the
    ``recorder`` callback: 2 epochs of batches of 8 at a learning rate of
    0.05 unless ``options`` say otherwise. Returns ``(model, history)``."""
    from explain_attn.models.training import train

    model = model or recording_model()
    settings = {"epochs": 2, "batch_size": 8, "learning_rate": 0.05}
    settings |= {"verbose": 0, "callbacks": [recorder], **options}
    return model, train(model, data, **settings)
