"""Cross-check of `explain_attn.metrics` against Quantus 0.6.0.

Quantus is a test-only dependency (`pip install quantus==0.6.0`); these tests
skip without it. Quantus divides each call's batch by its maximum before
scoring, so every image goes in its own call: for the scale-free metrics that
changes nothing, and for `Sparseness` it fixes the scale at which Quantus
adds its `1e-7`. Every definitional difference found here is recorded in the
docstrings of `explain_attn.metrics`.
"""

import numpy as np
import pytest

quantus = pytest.importorskip("quantus")

from explain_attn import metrics  # noqa: E402

NUM_IMAGES = 12
SHAPE = (16, 16)


def _quantus_scores(metric, maps, masks=None):
    """Scores of a Quantus metric, one image per call, as a float array."""
    scores = []
    for index, attention_map in enumerate(maps):
        a_batch = attention_map[None, None].astype(np.float64)
        x_batch = np.zeros_like(a_batch)
        s_batch = None
        if masks is not None:
            s_batch = masks[index][None, None].astype(np.float64)
        result = metric(
            model=None,
            x_batch=x_batch,
            y_batch=np.zeros(1, dtype=np.int64),
            a_batch=a_batch,
            s_batch=s_batch,
        )
        scores.append(float(result[0]))
    return np.array(scores)


@pytest.fixture
def maps():
    rng = np.random.default_rng(20)
    maps = rng.random((NUM_IMAGES, *SHAPE))
    # A few peaked maps too, so that scores spread over their range.
    maps[::3] **= 3
    return maps


@pytest.fixture
def masks():
    rng = np.random.default_rng(21)
    masks = rng.random((NUM_IMAGES, *SHAPE)) < rng.uniform(0.05, 0.6)
    masks[:, 4:9, 5:11] = True  # never empty, never full
    masks[:, 0, 0] = False
    return masks


def test_entropy_in_nats_equals_complexity(maps):
    expected = _quantus_scores(quantus.Complexity(disable_warnings=True), maps)
    np.testing.assert_allclose(
        metrics.entropy(maps, normalize=False), expected, rtol=0, atol=1e-6
    )


def test_sparseness_equals_sparseness(maps):
    expected = _quantus_scores(quantus.Sparseness(disable_warnings=True), maps)
    np.testing.assert_allclose(
        metrics.sparseness(maps), expected, rtol=0, atol=1e-6
    )
    # The one difference: Quantus scores m / max(m) + 1e-7.
    shifted = maps / maps.max(axis=(1, 2), keepdims=True) + 1e-7
    np.testing.assert_allclose(
        metrics.sparseness(shifted), expected, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (metrics.mass_in_mask, "RelevanceMassAccuracy"),
        (metrics.rank_accuracy, "RelevanceRankAccuracy"),
        (metrics.roc_auc, "AUC"),
        (metrics.pointing_game, "PointingGame"),
    ],
)
def test_foreground_metrics_equal_quantus(maps, masks, ours, theirs):
    metric = getattr(quantus, theirs)(disable_warnings=True)
    expected = _quantus_scores(metric, maps, masks)
    np.testing.assert_allclose(ours(maps, masks), expected, rtol=0, atol=1e-6)


def test_pointing_game_hits_and_misses_both_occur(maps, masks):
    # Guards the comparison above against a trivially constant outcome.
    scores = metrics.pointing_game(maps, masks)
    assert 0 < scores.sum() < len(scores)


def test_documented_differences():
    # Quantus' pointing game: a tie favours a hit, and an empty mask is
    # `True`; ours: the share of tied maxima in the mask, and NaN.
    pointing = quantus.PointingGame(disable_warnings=True)
    two_maxima = np.zeros((1, 4, 4))
    two_maxima[0, 0, :2] = 1.0
    one_pixel = np.zeros((1, 4, 4), dtype=bool)
    one_pixel[0, 0, 0] = True
    assert _quantus_scores(pointing, two_maxima, one_pixel)[0] == 1.0
    assert metrics.pointing_game(two_maxima, one_pixel)[0] == 0.5
    empty = np.zeros((1, 4, 4), dtype=bool)
    assert _quantus_scores(pointing, two_maxima, empty)[0] == 1.0
    assert np.isnan(metrics.pointing_game(two_maxima, empty)[0])
    # Quantus' sparseness scores an all-zero map inside a batch 0 (its
    # 1e-7 makes it flat); ours is NaN.
    sparse = quantus.Sparseness(disable_warnings=True)
    batch = np.stack([np.zeros((4, 4)), two_maxima[0]])[:, None]
    result = sparse(
        model=None,
        x_batch=np.zeros_like(batch),
        y_batch=np.zeros(2, dtype=np.int64),
        a_batch=batch,
    )
    assert result[0] == 0.0
    assert np.isnan(metrics.sparseness(batch[:, 0])[0])
