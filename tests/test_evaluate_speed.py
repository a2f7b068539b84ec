"""The evaluation's shared work: same numbers, whatever the chunks.

Behaviour only (timings are in `benchmarks/`): the metrics of a chunk share
one resize and one sort without changing a value, chunks and metric slices
do not change the per-image numbers, and the chunk size follows the image
size.
"""

import os

import numpy as np
import pytest

from explain_attn import metrics
from explain_attn.data import load_dataset
from explain_attn.data.source import ArraySource
from explain_attn.metrics import foreground
from explain_attn.report import evaluate as evaluate_module
from explain_attn.report.build import report_explanations
from explain_attn.report.evaluate import (
    chunk_size_for,
    chunks,
    evaluate,
    evaluate_chunks,
    score_slices,
)
from explain_attn.report.models import load_report_models


def _maps_with_ties(rng, shape, dtype):
    maps = np.round(rng.random(shape) * 6) / 6  # few values: many ties
    maps[:, : shape[1] // 3] = 0.0  # a zero band, as after a ReLU
    maps[0] = 0.0  # all-zero map
    maps[1] = 0.5  # constant map
    maps[2, 0, 0] = -0.0
    return maps.astype(dtype)


@pytest.mark.parametrize(
    ("map_shape", "mask_shape", "dtype"),
    [
        ((20, 4, 4), (12, 12), np.float32),  # resized
        ((20, 9, 7), (9, 7), np.float32),  # same size, float32 kept
        ((20, 5, 6), (11, 13), np.float64),
        ((20, 3, 3), (3, 3), np.float16),
    ],
)
def test_foreground_metrics_equal_the_metrics_one_by_one(
    map_shape, mask_shape, dtype
):
    rng = np.random.default_rng(0)
    maps = _maps_with_ties(rng, map_shape, dtype)
    masks = rng.random((map_shape[0], *mask_shape)) > 0.6
    masks[3] = False  # empty mask
    masks[4] = True  # full mask
    together = metrics.foreground_metrics(maps, masks)
    assert list(together) == list(metrics.FOREGROUND_METRICS)
    for name, function in metrics.FOREGROUND_METRICS.items():
        np.testing.assert_array_equal(together[name], function(maps, masks))


def test_foreground_metrics_hand_computed():
    # One 2 x 2 map [[3, 1], [2, 0]] and the mask on the left column.
    maps = np.array([[[3.0, 1.0], [2.0, 0.0]]])
    masks = np.array([[[True, False], [True, False]]])
    values = metrics.foreground_metrics(maps, masks)
    assert values["mass_in_mask"][0] == pytest.approx(5 / 6)
    assert values["pointing_game"][0] == 1.0
    assert values["rank_accuracy"][0] == 1.0  # top 2 are 3 and 2
    assert values["roc_auc"][0] == 1.0  # every object pixel beats background
    # Top 20 % of 4 pixels: ceil(0.8) = 1 pixel (the 3); IoU 1 / 2.
    assert values["top_fraction_iou"][0] == pytest.approx(0.5)


def test_foreground_metrics_with_ties_across_the_mask_hand_computed():
    # Row 0: maxima 2, 2 (one in the mask); 1, 1, 1 tied with one in it.
    # Row 1: the cut of the top 2 falls in three tied 1s, one in the mask.
    maps = np.array([[[1.0, 1, 1, 2, 2, 0]], [[2.0, 1, 1, 1, 0, 0]]])
    masks = np.array([[[1, 0, 0, 1, 0, 0]], [[0, 1, 0, 0, 1, 0]]], bool)
    values = metrics.foreground_metrics(maps, masks)
    # Pairs (inside, outside) won, ties one half: 1 beats 0, ties 1, 1;
    # 2 beats 1, 1, 0, ties 2. Row 1: 1 beats 0, ties 1, 1; 0 ties 0.
    np.testing.assert_array_equal(
        values["roc_auc"], [(1 + 1 + 3 + 0.5) / 8, (1 + 1 + 0.5) / 8]
    )
    np.testing.assert_array_equal(values["pointing_game"], [0.5, 0.0])
    # Top 2: both 2s (one inside); the 2 and 1/3 of each tied 1.
    np.testing.assert_allclose(values["rank_accuracy"], [1 / 2, 1 / 6])
    # Top ceil(0.2 * 6) = 2 pixels: I = 1 and 1/3; union 2 + 2 - I.
    np.testing.assert_allclose(
        values["top_fraction_iou"], [1 / 3, (1 / 3) / (4 - 1 / 3)]
    )
    np.testing.assert_allclose(values["mass_in_mask"], [3 / 7, 1 / 5])
    for name, function in metrics.FOREGROUND_METRICS.items():
        np.testing.assert_array_equal(values[name], function(maps, masks))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_foreground_metrics_equal_one_by_one_on_large_tied_maps(dtype):
    # Upsampled maps (many equal values), zero bands, values one ulp
    # apart, and masks of every share: the counts read from the sorted
    # keys equal those of the metrics' own passes, bit for bit.
    rng = np.random.default_rng(7)
    maps = np.round(rng.random((9, 7, 7)) * 3) / 3
    maps[:, :2] = 0.0
    maps[5] = np.nextafter(np.float64(0.5), 1) * (rng.random((7, 7)) > 0.5)
    maps[6] = 0.5
    maps[6, 0, :3] = np.nextafter(0.5, 1)
    masks = rng.random((9, 56, 56)) < rng.random((9, 1, 1))
    masks[7] = False
    masks[8] = True
    maps = maps.astype(dtype)
    together = metrics.foreground_metrics(maps, masks)
    for name, function in metrics.FOREGROUND_METRICS.items():
        np.testing.assert_array_equal(together[name], function(maps, masks))


def test_row_searchsorted_equals_searchsorted_per_row():
    from explain_attn.metrics.arrays import row_searchsorted

    rng = np.random.default_rng(8)
    for width in (1, 2, 7, 64, 1000):
        rows = np.sort(rng.integers(0, 9, (5, width)), axis=1)
        targets = rng.integers(-1, 11, (5, 4))
        found = row_searchsorted(rows, np.arange(5)[:, None], targets)
        expected = [
            np.searchsorted(row, target)
            for row, target in zip(rows, targets, strict=True)
        ]
        np.testing.assert_array_equal(found, expected)
    assert row_searchsorted(rows, np.zeros(0, int), 3).shape == (0,)


def test_maps_are_resized_once(monkeypatch):
    calls = []
    original = foreground.resize

    def counting(maps, shape):
        calls.append(shape)
        return original(maps, shape)

    monkeypatch.setattr(foreground, "resize", counting)
    rng = np.random.default_rng(1)
    metrics.foreground_metrics(
        rng.random((4, 3, 3)), rng.random((4, 6, 6)) > 0.5
    )
    assert len(calls) == 1
    calls.clear()
    for function in metrics.FOREGROUND_METRICS.values():
        function(rng.random((4, 3, 3)), rng.random((4, 6, 6)) > 0.5)
    assert len(calls) == 5


@pytest.mark.parametrize(
    ("shape", "batch_size", "expected"),
    [
        ((32, 32, 3), 128, 1024),  # capped at MAX_CHUNK_SIZE
        ((128, 128, 3), 128, 128),  # 170 images fit, full batches: 128
        ((224, 224, 3), 41, 41),  # 55 fit: one batch (`batch_size_for`)
        ((224, 224, 3), 1, 55),  # 32 MiB / (224 * 224 * 3 * 4 bytes)
        ((224, 224), 1, 167),  # (H, W): one channel
        ((4000, 4000, 3), 64, 1),  # at least one image
    ],
)
def test_chunk_size_follows_the_image_size(shape, batch_size, expected):
    assert chunk_size_for(shape, batch_size=batch_size) == expected


def test_score_slices_cover_every_image_once():
    slices = score_slices(10, pixels=3, budget=10)
    assert [(s.start, s.stop) for s in slices] == [
        (0, 3),
        (3, 6),
        (6, 9),
        (9, 10),
    ]
    assert [(s.start, s.stop) for s in score_slices(2, 10**9, 10)] == [
        (0, 1),
        (1, 2),
    ]
    assert score_slices(0, 5) == []


def test_chunks_cut_the_dataset_in_order():
    rng = np.random.default_rng(2)
    data = ArraySource(
        rng.random((7, 4, 4, 3)),
        np.arange(7) % 2,
        masks=rng.random((7, 4, 4)) > 0.5,
    )
    parts = list(chunks(data, 3))
    assert [len(images) for images, _, _ in parts] == [3, 3, 1]
    np.testing.assert_array_equal(
        np.concatenate([images for images, _, _ in parts]), data.images
    )
    np.testing.assert_array_equal(
        np.concatenate([labels for _, labels, _ in parts]), data.labels
    )
    np.testing.assert_array_equal(
        np.concatenate([masks for _, _, masks in parts]), data.masks
    )
    data.masks = None
    assert all(masks is None for _, _, masks in chunks(data, 3))


@pytest.fixture(scope="module")
def setup(report_inputs):
    models = load_report_models(
        [str(report_inputs["attention"])],
        str(report_inputs["baseline"]),
        safe_mode=True,
        say=lambda *args: None,
    )
    explanations, reference = report_explanations(models)
    test = load_dataset(str(report_inputs["data"]), split="test")
    whole = evaluate(
        models, explanations, reference, test, batch_size=128, verbose=0,
        chunk_size=1000,
    )  # fmt: skip
    return models, explanations, reference, test, whole


def _assert_same(first, second):
    assert first.predictions.keys() == second.predictions.keys()
    for key in first.predictions:
        np.testing.assert_array_equal(
            first.predictions[key], second.predictions[key]
        )
    for table in ("values", "agreement"):
        one, other = getattr(first, table), getattr(second, table)
        assert one.keys() == other.keys()
        for explanation, row in one.items():
            assert list(row) == list(other[explanation])
            for name, values in row.items():
                np.testing.assert_allclose(
                    values, other[explanation][name], rtol=1e-6, atol=1e-7
                )


def test_chunks_and_slices_do_not_change_the_numbers(setup, monkeypatch):
    models, explanations, reference, test, whole = setup
    assert len(whole.predictions[models[0].key]) == len(test.labels)
    for row in whole.values.values():
        assert set(row) == set(metrics.PER_IMAGE_METRICS)
    chunked = evaluate(
        models, explanations, reference, test, batch_size=2, verbose=0,
        chunk_size=5,
    )  # fmt: skip
    _assert_same(whole, chunked)
    # Metric calls of at most 3 images of 16 x 16 mask pixels.
    monkeypatch.setattr(evaluate_module, "METRIC_PIXELS", 3 * 16 * 16)
    sliced = evaluate(
        models, explanations, reference, test, batch_size=4, verbose=0
    )
    _assert_same(whole, sliced)


def test_any_iterable_of_chunks(setup):
    models, explanations, reference, test, whole = setup

    def stream():
        for start in range(0, len(test.labels), 4):
            stop = start + 4
            yield (
                test.images[start:stop].copy(),
                test.labels[start:stop],
                test.masks[start:stop],
            )

    streamed = evaluate_chunks(
        models, explanations, reference, stream(), batch_size=8, verbose=0
    )
    _assert_same(whole, streamed)
    with pytest.raises(ValueError, match="holds no image"):
        evaluate_chunks(
            models, explanations, reference, iter(()), batch_size=8, verbose=0
        )


def test_a_model_that_does_not_fit_is_named(setup):
    models, explanations, reference, test, _ = setup
    wrong = [(np.zeros((2, 8, 8, 3), np.float32), np.zeros(2, int), None)]
    with pytest.raises(ValueError, match="model"):
        evaluate_chunks(
            models, explanations, reference, wrong, batch_size=8, verbose=0
        )


def test_report_command_keeps_blas_on_one_thread(monkeypatch):
    from explain_attn.cli.report import single_threaded_blas

    seen = {}

    @single_threaded_blas
    def command():
        seen.update(
            {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS",)}
        )

    # Recorded first, so that the test leaves the variable as it found it.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "unset below")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    command()
    assert seen == {"OPENBLAS_NUM_THREADS": "1"}
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    command()
    assert seen == {"OPENBLAS_NUM_THREADS": "2"}


def test_metric_slices_follow_the_budget(setup, monkeypatch):
    models, explanations, reference, test, _ = setup
    sizes = []
    original = metrics.foreground_metrics

    def recording(maps, masks):
        sizes.append(len(maps))
        return original(maps, masks)

    monkeypatch.setattr(metrics, "foreground_metrics", recording)
    monkeypatch.setattr(evaluate_module, "METRIC_PIXELS", 5 * 16 * 16)
    evaluate(models, explanations, reference, test, batch_size=4, verbose=0)
    # 12 images of 16 x 16 mask pixels, 5 per call, for each explanation.
    assert sizes == [5] * len(explanations) + [5] * len(explanations) + [
        2
    ] * len(explanations)


def test_spearman_with_many_ties_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    maps_a = _maps_with_ties(rng, (6, 9, 9), np.float32)[2:]
    maps_b = np.round(rng.random((4, 9, 9)) * 3).astype(np.float32)
    expected = [
        stats.spearmanr(a.ravel(), b.ravel()).statistic
        for a, b in zip(maps_a, maps_b, strict=True)
    ]
    np.testing.assert_allclose(
        metrics.spearman(maps_a, maps_b), expected, rtol=1e-12
    )


@pytest.mark.parametrize(
    ("shape", "batch_size", "expected"),
    [
        ((16, 16, 3), 128, 128),  # small images: the given batch
        ((128, 128, 3), 128, 128),  # 2**21 / 128**2 = 128
        ((224, 224, 3), 128, 41),  # 2**21 / 224**2 = 41.8
        ((224, 224), 16, 16),  # never more than given
        ((3000, 3000, 3), 128, 1),  # at least one
    ],
)
def test_batch_size_follows_the_image_size(shape, batch_size, expected):
    from explain_attn.report.evaluate import batch_size_for

    assert batch_size_for(shape, batch_size) == expected


@pytest.mark.parametrize(
    ("map_shape", "mask_shape", "dtype"),
    [
        ((9, 7), (9, 7), np.float32),  # same size, float32 kept
        ((4, 4), (12, 12), np.float32),  # resized
        ((5, 6), (11, 13), np.float64),
    ],
)
def test_one_map_against_many_masks_equals_the_repeated_map(
    map_shape, mask_shape, dtype
):
    rng = np.random.default_rng(4)
    masks = rng.random((7, *mask_shape)) > 0.6
    masks[0] = False  # empty mask
    masks[1] = True  # full mask
    for one in (
        _maps_with_ties(rng, (3, *map_shape), dtype)[2],  # ties, -0.0
        rng.random(map_shape).astype(dtype),
        np.ones(map_shape, dtype),  # the flat map: every pixel tied
        np.zeros(map_shape, dtype),
        # A symmetric map, as the centre prior: groups of 2 and 4 ties.
        np.add.outer(
            np.abs(np.arange(map_shape[0]) - (map_shape[0] - 1) / 2),
            np.abs(np.arange(map_shape[1]) - (map_shape[1] - 1) / 2),
        ).astype(dtype),
    ):
        expected = metrics.foreground_metrics(
            np.broadcast_to(one, (7, *map_shape)), masks
        )
        got = metrics.foreground_metrics_of_one_map(one, masks)
        assert list(got) == list(expected)
        for name, values in expected.items():
            np.testing.assert_array_equal(got[name], values)


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((7, 7), (7, 7)), ((8, 8), (4, 4)), ((3, 5), (6, 2))],
)
def test_agreement_reference_equals_the_metrics(shape_a, shape_b):
    # The report compares each attention map with one reference CAM,
    # prepared once per size: the same numbers as each metric alone.
    rng = np.random.default_rng(9)
    maps_b = np.round(rng.normal(size=(6, *shape_b)), 1)  # signed, ties
    maps_b[0] = 2.0  # a constant reference map
    reference = metrics.AgreementReference(maps_b)
    for _ in range(2):  # the second call reuses the prepared reference
        maps_a = np.round(rng.random((6, *shape_a)) * 4).astype(np.float32)
        maps_a[1] = 0.0  # a constant attention map
        for name, function in metrics.AGREEMENT_METRICS.items():
            expected = function(maps_a, maps_b)
            assert np.isnan(expected[:2]).all()
            np.testing.assert_array_equal(
                reference.compare(name, maps_a), expected, err_msg=name
            )
    with pytest.raises(ValueError, match="Received: name='kendall'"):
        reference.compare("kendall", maps_a)
    with pytest.raises(ValueError, match="same number of images"):
        reference.compare("spearman", maps_a[:2])
