"""Faithfulness checks against effects computed by hand.

Interventions on attention layers whose map we set, the randomisation
cascade's order and its hands-off treatment of the caller's model, and
deletion/insertion curves of a model whose output is a known function of
the pixels.
"""

import keras
import numpy as np
import pytest
from conftest import numpy_channel_weights, sigmoid

from explain_attn import metrics
from explain_attn.attention.layers import CBAM, SpatialAttention
from explain_attn.data.source import ArraySource
from explain_attn.faithfulness import (
    attention_interventions,
    deletion_insertion,
    interventions,
    map_similarity,
    randomization,
    randomization_check,
)
from explain_attn.faithfulness.randomization import MapSimilarity

SHAPE = (6, 6, 2)


def _head_weights(model):
    kernel, bias = (
        w.numpy().astype(np.float64) for w in model.layers[-1].weights
    )
    return kernel, bias


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    values = np.exp(shifted)
    return values / values.sum(axis=-1, keepdims=True)


def _constant_attention_model(bias, *, cbam=False):
    """image -> attention with a constant map sigmoid(bias) -> gap -> logits.

    The attention layer works at the input resolution, so a mask needs no
    resizing; the model ends in logits (the checks apply the softmax).
    """
    keras.utils.set_random_seed(3)
    inputs = keras.Input(SHAPE, name="image")
    if cbam:
        layer = CBAM(1, 3, name="attention")
    else:
        layer = SpatialAttention(3, name="attention")
    x = layer(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, outputs)
    conv = layer.spatial_attention.conv if cbam else layer.conv
    conv.kernel.assign(np.zeros(conv.kernel.shape, np.float32))
    conv.bias.assign(np.full(conv.bias.shape, bias, np.float32))
    dense = model.get_layer("logits")
    rng = np.random.default_rng(4)
    dense.kernel.assign(rng.normal(0, 3, dense.kernel.shape).astype("f4"))
    dense.bias.assign(np.array([0.2, -0.2], np.float32))
    return model, layer


def _data(count=8, *, masks=True, seed=5):
    rng = np.random.default_rng(seed)
    images = rng.random((count, *SHAPE), dtype=np.float32)
    mask = np.zeros((count, *SHAPE[:2]), bool)
    for index in range(count):
        row, column = rng.integers(0, 4, size=2)
        mask[index, row : row + 3, column : column + 3] = True
    labels = np.arange(count) % 2
    return ArraySource(images, labels, masks=mask if masks else None)


def _expected(model, features):
    """Probabilities of the head (gap -> logits -> softmax) on features."""
    kernel, bias = _head_weights(model)
    return _softmax(features.mean(axis=(1, 2)) @ kernel + bias)


def _check(result, name, probabilities, labels):
    row = result["layers"][0]["interventions"][name]
    true = probabilities[np.arange(len(labels)), labels]
    correct = probabilities.argmax(-1) == labels
    assert row["mean_true_class_probability"] == pytest.approx(
        true.mean(), abs=1e-6
    )
    assert row["accuracy"] == pytest.approx(correct.mean())
    return row


def test_interventions_on_a_constant_map():
    model, _ = _constant_attention_model(0.5)
    data = _data()
    constant = sigmoid(0.5)
    images = data.images.astype(np.float64)
    before = [w.copy() for w in model.get_weights()]

    result = attention_interventions(model, data, seed=0)

    clean = _expected(model, images * constant)
    labels = data.labels
    true = clean[np.arange(len(labels)), labels]
    assert result["clean"]["mean_true_class_probability"] == pytest.approx(
        true.mean()
    )
    # A constant map is its own mean and its own shuffle: nothing changes.
    for name in ("uniform", "shuffled"):
        row = _check(result, name, clean, labels)
        assert row["probability_change"]["mean_difference"] == pytest.approx(
            0.0, abs=1e-6
        )
        assert row["accuracy_change"]["mean_difference"] == 0.0
    # 1 - m scales every feature by (1 - c) instead of c.
    row = _check(
        result, "inverted", _expected(model, images * (1 - constant)), labels
    )
    assert row["probability_change"]["n"] == len(labels)
    # The mask (same resolution: no resizing) zeroes the background.
    masked = images * data.masks[..., None]
    row = _check(result, "mask", _expected(model, masked), labels)
    difference = _expected(model, masked)[np.arange(len(labels)), labels] - true
    assert row["probability_change"]["mean_difference"] == pytest.approx(
        difference.mean(), abs=1e-6
    )
    for weight, old in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, old)


def test_cbam_intervention_replaces_the_spatial_map_after_channels():
    model, layer = _constant_attention_model(-1.0, cbam=True)
    data = _data()
    images = data.images.astype(np.float64)
    weights = numpy_channel_weights(images, layer.channel_attention)
    channels = images * weights[:, None, None, :]

    result = attention_interventions(model, data)

    clean = _expected(model, channels * sigmoid(-1.0))
    _check(result, "uniform", clean, data.labels)
    _check(
        result,
        "mask",
        _expected(model, channels * data.masks[..., None]),
        data.labels,
    )


def test_masks_are_area_resized_to_the_layer():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, :2, :1] = True
    resized = interventions._resized_masks(masks, (2, 2))[0, ..., 0]
    np.testing.assert_allclose(resized, [[0.5, 0.0], [0.0, 0.0]])


def test_without_masks_the_mask_intervention_is_left_out():
    model, _ = _constant_attention_model(0.0)
    result = attention_interventions(model, _data(masks=False))
    assert set(result["layers"][0]["interventions"]) == {
        "uniform",
        "shuffled",
        "inverted",
    }
    assert "no foreground masks" in result["notes"][0]


def test_gates_and_other_layers(nested_gate_model, images):
    labels = np.arange(len(images)) % 3
    data = ArraySource(images, labels)
    result = attention_interventions(
        nested_gate_model, data, layers=["inner/gate", "stem"]
    )
    stem, gate = result["layers"]  # in call order
    assert (stem["layer"], gate["layer"]) == ("stem", "inner/gate")
    assert gate["kind"] == "gate" and "plain-Keras gate" in gate["notes"][0]
    assert stem["interventions"] == {}
    assert "no intervention is possible" in stem["notes"][0]
    # The unmodified pass through the cut graph is the model itself.
    probabilities = nested_gate_model.predict(images, verbose=0)
    assert result["clean"]["mean_true_class_probability"] == pytest.approx(
        probabilities[np.arange(len(labels)), labels].mean(), rel=1e-5
    )
    uniform = gate["interventions"]["uniform"]
    assert np.isfinite(uniform["probability_change"]["mean_difference"])


def test_cascade_order_and_the_callers_model_is_untouched(
    layered_model, images, monkeypatch
):
    before = [w.copy() for w in layered_model.get_weights()]
    touched = []
    original = randomization.reinitialize_layer

    def spy(layer, rng):
        touched.append(layer.name)
        assert all(layer is not mine for mine in layered_model.layers)
        original(layer, rng)

    monkeypatch.setattr(randomization, "reinitialize_layer", spy)
    result = randomization_check(layered_model, images[:6], seed=1)

    cascade = ["predictions", "channel", "cbam", "spatial", "conv"]
    assert result["cascade"]["layers"] == cascade
    assert touched == [*cascade, "spatial", "cbam"]  # then each alone
    assert result["maps"] == ["spatial", "cbam", "grad_cam"]
    curves = result["cascade"]["spearman_median"]
    assert all(len(c) == len(cascade) + 1 for c in curves.values())
    # Step k is after the first k layers: a map stays until its own layer.
    assert curves["spatial"][:3] == pytest.approx([1.0, 1.0, 1.0])
    assert curves["spatial"][4] < 0.9
    assert set(result["independent"]) == {"spatial", "cbam"}
    for weight, old in zip(layered_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, old)


def test_maps_that_do_not_change_fail(layered_model, images):
    result = randomization_check(
        layered_model, images[:4], threshold=-1.5, independent=False
    )
    assert not any(check["passed"] for check in result["checks"])
    assert result["independent"] == {}


def test_reinitialize_layer_resets_one_dimensional_weights():
    layer = keras.layers.BatchNormalization()
    layer.build((None, 3))
    for variable in layer.weights:
        variable.assign(np.full(variable.shape, 7.0, np.float32))
    conv = keras.layers.Conv2D(4, 3)
    conv.build((None, 8, 8, 2))
    rng = np.random.default_rng(0)
    randomization.reinitialize_layer(layer, rng)
    randomization.reinitialize_layer(conv, rng)
    gamma, beta, mean, variance = (v.numpy() for v in layer.weights)
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(variance, 1.0)
    np.testing.assert_array_equal(beta, 0.0)
    np.testing.assert_array_equal(mean, 0.0)
    limit = np.sqrt(6 / (2 * 9 + 4 * 9))
    kernel = conv.kernel.numpy()
    assert np.abs(kernel).max() <= limit and kernel.std() > limit / 4
    np.testing.assert_array_equal(conv.bias.numpy(), 0.0)


def test_map_similarity_degenerate_cases():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 9, 9))
    rho, ssim = map_similarity(maps, maps)
    np.testing.assert_allclose(rho, 1.0)
    np.testing.assert_allclose(ssim, 1.0)
    flat = np.ones_like(maps)
    rho, _ = map_similarity(maps, flat)
    np.testing.assert_array_equal(rho, 0.0)  # lost all structure
    rho, _ = map_similarity(flat, maps)
    assert np.isnan(rho).all()  # nothing to compare with
    rho, ssim = map_similarity(maps[:, :2, :2], maps[:, :2, :2])
    assert np.isnan(ssim).all()  # too small for a 3-pixel window
    with pytest.raises(ValueError, match="same shape"):
        map_similarity(maps, maps[:2])


@pytest.mark.parametrize("shape", [(6, 12, 10), (4, 5, 6)])
def test_map_similarity_ssim_is_skimage_per_image(shape):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    original = rng.random(shape)
    changed = original + rng.normal(0, 0.2, shape)
    changed[1] = 7.0  # a constant map scales to zeros
    _, ssim = map_similarity(original, changed)
    window = 7 if min(shape[1:]) >= 7 else 5
    expected = []
    for before, after in zip(original, changed, strict=True):
        unit = [
            (m - m.min()) / np.ptp(m) if np.ptp(m) else np.zeros_like(m)
            for m in (before, after)
        ]
        _, full = structural_similarity(
            *unit, data_range=1.0, win_size=window, full=True
        )
        pad = window // 2
        expected.append(full[pad:-pad, pad:-pad].mean())
    np.testing.assert_allclose(ssim, expected, rtol=1e-12)


def test_prepared_original_gives_each_comparisons_values():
    # One original against several changed sets (as the cascade does):
    # each equal to map_similarity alone, Spearman to SciPy's per image.
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    original = rng.random((4, 8, 8))
    original[2] = 0.3  # constant: NaN
    prepared = MapSimilarity(original)
    for noise in (0.05, 0.5, 3.0):
        changed = np.round(original + rng.normal(0, noise, original.shape), 1)
        rho, ssim = prepared(changed)
        alone = map_similarity(original, changed)
        np.testing.assert_array_equal(rho, alone[0])
        np.testing.assert_array_equal(ssim, alone[1])
        for index in (0, 1, 3):
            expected = spearmanr(
                original[index].ravel(), changed[index].ravel()
            )
            assert rho[index] == pytest.approx(expected.statistic, abs=1e-12)
        assert np.isnan(rho[2])
    with pytest.raises(ValueError, match="same shape"):
        prepared(original[:, :4])
    other = rng.random((4, 4, 4))  # Another size: resized, as `spearman`.
    np.testing.assert_array_equal(
        metrics.SpearmanReference(original)(other),
        metrics.spearman(original, other),
    )


def _region_model(size, region, scale):
    """Class-1 logit = scale * mean of the pixels in ``region``; class 0: 0."""
    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    outputs = keras.layers.Dense(2, use_bias=False, name="logits")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((size * size, 2), np.float32)
    kernel[region.ravel(), 1] = scale / region.sum()
    model.get_layer("logits").kernel.assign(kernel)
    return model


def test_deletion_and_insertion_by_hand():
    from skimage.filters import gaussian

    size, steps, sigma, scale = 4, 4, 1.0, 6.0
    region = np.zeros((size, size), bool)
    region[:2, :2] = True
    model = _region_model(size, region, scale)
    rng = np.random.default_rng(2)
    images = rng.random((3, size, size, 1), dtype=np.float32)
    labels = np.array([1, 1, 0])
    maps = rng.permuted(
        np.tile(np.arange(size * size, dtype=float), (3, 1)), axis=1
    ).reshape(3, size, size)

    result = deletion_insertion(
        model,
        images,
        labels,
        {"map": maps},
        steps=steps,
        blur_sigma=sigma,
        batch_size=7,
    )

    blurred = gaussian(images[..., 0], sigma=(0, sigma, sigma))
    expected = {"deletion": np.zeros((3, steps + 1)), "insertion": None}
    expected["insertion"] = np.zeros((3, steps + 1))
    for index in range(3):
        order = np.argsort(-maps[index].ravel())
        for step in range(steps + 1):
            chosen = order[: round(step / steps * size * size)]
            for curve, start, source in (
                ("deletion", images[index, ..., 0], blurred[index]),
                ("insertion", blurred[index], images[index, ..., 0]),
            ):
                pixels = start.ravel().astype(np.float64).copy()
                pixels[chosen] = source.ravel()[chosen]
                p1 = sigmoid(scale * pixels[region.ravel()].mean())
                value = p1 if labels[index] == 1 else 1 - p1
                expected[curve][index, step] = value
    np.testing.assert_allclose(result["fractions"], [0, 0.25, 0.5, 0.75, 1])
    for curve in ("deletion", "insertion"):
        np.testing.assert_allclose(
            result["map"][curve], expected[curve], rtol=1e-5
        )
        widths = np.diff(result["fractions"])
        values = expected[curve]
        auc = (widths * (values[:, 1:] + values[:, :-1]) / 2).sum(axis=1)
        np.testing.assert_allclose(
            result["map"][f"{curve}_auc"], auc, rtol=1e-5
        )
    random = result["random"]["deletion"]
    np.testing.assert_allclose(
        random[:, 0], expected["deletion"][:, 0], rtol=1e-5
    )
    np.testing.assert_allclose(
        random[:, -1], expected["deletion"][:, -1], rtol=1e-5
    )


def test_deletion_rejects_bad_input():
    model = _region_model(4, np.eye(4, dtype=bool), 1.0)
    images = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match="non-empty dict"):
        deletion_insertion(model, images, [0, 1], np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="one label per image"):
        deletion_insertion(model, images, [0], {"m": np.zeros((2, 4, 4))})
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(
            model, images, [0, 1], {"m": np.zeros((2, 4, 4))}, steps=0
        )


def test_report_section(tiny_report):
    report, html_path, json_path = tiny_report
    import json

    section = json.loads(json_path.read_text())["faithfulness"]
    (interventions,) = section["interventions"]
    layers = [row["layer"] for row in interventions["layers"]]
    assert layers == ["block2_attention", "block3_attention"]
    assert {row["model"] for row in section["randomization"]} == {
        "attention",
        "baseline",
    }
    ids = [row["id"] for row in section["deletion_insertion"]["rows"]]
    assert "attention:block3_attention" in ids and "baseline:random" in ids
    html = html_path.read_text(encoding="utf-8")
    assert 'id="faithfulness"' in html
    assert "Randomisation sanity checks" in html


def test_report_without_the_section(report_inputs, tmp_path):
    from explain_attn.report import render_html, report_from_sources

    report = report_from_sources(
        str(report_inputs["data"]),
        attention_models=[str(report_inputs["attention"])],
        baseline_model=str(report_inputs["baseline"]),
        num_examples=1,
        verbose=0,
        faithfulness=False,
    )
    assert "faithfulness" not in report.data
    render_html(report, tmp_path / "r.html")
    assert 'id="faithfulness"' not in (tmp_path / "r.html").read_text()


def test_spurious_correlation_is_for_the_sample_demo_only(report_inputs):
    from explain_attn.data import load_dataset, train_test_datasets
    from explain_attn.report import report_from_sources

    with pytest.raises(ValueError, match="'sample' data only"):
        train_test_datasets(
            str(report_inputs["data"]), spurious_correlation=0.5
        )
    with pytest.raises(ValueError, match="'sample' data only"):
        load_dataset(str(report_inputs["data"]), spurious_correlation=0.5)
    with pytest.raises(ValueError, match="nothing is trained"):
        report_from_sources(
            str(report_inputs["data"]),
            attention_models=[str(report_inputs["attention"])],
            baseline_model=str(report_inputs["baseline"]),
            verbose=0,
            spurious_correlation=0.9,
        )
    plain = load_dataset("sample", split="train", limit=16)
    same = load_dataset(
        "sample", split="train", limit=16, spurious_correlation=0.0
    )
    tinted = load_dataset(
        "sample", split="train", limit=16, spurious_correlation=1.0
    )
    assert plain.fingerprint() == same.fingerprint()  # the cache key too
    assert tinted.fingerprint() != plain.fingerprint()
    np.testing.assert_array_equal(tinted.labels, plain.labels)


def test_cli_options(report_command, tmp_path):
    import json

    from click.testing import CliRunner

    from explain_attn.cli import main

    common = [
        *report_command,
        "--num-examples",
        "1",
    ]
    output = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, [*common, "--no-faithfulness", "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert "faithfulness" not in json.loads(
        output.with_suffix(".json").read_text()
    )
    result = CliRunner().invoke(
        main,
        [*common, "--spurious-correlation", "0.9", "--output", str(output)],
    )
    assert result.exit_code == 2
    assert "nothing is trained" in result.stderr
    result = CliRunner().invoke(main, [*common, "--spurious-correlation", "2"])
    assert result.exit_code == 2


def test_the_checks_explain_the_reports_cam_class(report_inputs, monkeypatch):
    from explain_attn.data import load_dataset
    from explain_attn.explanations import grad_cam
    from explain_attn.report import faithfulness as section_module
    from explain_attn.report.build import report_explanations
    from explain_attn.report.faithfulness import (
        faithfulness_section,
        faithfulness_settings,
    )
    from explain_attn.report.models import load_report_models

    models = load_report_models(
        [str(report_inputs["attention"])], str(report_inputs["baseline"]),
        safe_mode=True, say=lambda text: None,
    )  # fmt: skip
    test = load_dataset(str(report_inputs["data"]), split="test")
    seen = {}

    def deletion_spy(model, images, labels, maps, **options):
        # The report passes each model's state (`ModelState`).
        seen[("deletion", model.model.name)] = (images, labels, maps)
        return deletion_insertion(model, images, labels, maps, **options)

    def randomization_spy(model, images, **options):
        seen[("randomization", model.model.name)] = options["class_index"]
        return randomization_check(model, images, **options)

    monkeypatch.setattr(section_module, "deletion_insertion", deletion_spy)
    monkeypatch.setattr(
        section_module, "randomization_check", randomization_spy
    )
    # Every test image in every check, in order: the classes are checkable.
    settings = faithfulness_settings(
        "fast", intervention_images=2, randomization_images=12,
        deletion_images=12, steps=2,
    )  # fmt: skip
    baseline = models[-1].model
    predicted = np.argmax(baseline.predict(test.images, verbose=0), axis=-1)
    expected = {
        "predicted": predicted,
        "true": test.labels,
        0: np.zeros(12, int),
        1: np.ones(12, int),
    }
    cams = {}
    for cam_class, classes in expected.items():
        explanations, reference = report_explanations(
            models, cam_class=cam_class
        )
        section = faithfulness_section(
            models, explanations, test, settings=settings,
            say=lambda text: None,
        )  # fmt: skip
        assert section["settings"]["cam_class"] == cam_class
        images, labels, maps = seen[("deletion", baseline.name)]
        np.testing.assert_array_equal(images, test.images)
        np.testing.assert_array_equal(labels, classes)
        np.testing.assert_array_equal(
            seen[("randomization", baseline.name)], classes
        )
        cams[cam_class] = maps[reference.key]
        np.testing.assert_allclose(
            cams[cam_class],
            grad_cam(
                baseline, images, layer=reference.layer, class_index=classes
            ),
            atol=1e-5,
        )
    assert not np.allclose(cams[0], cams[1], atol=1e-3)
