"""Tests for `explain_attn.metrics`.

Expected values are worked out by hand on 2×2 and 3×3 maps, or come from an
independent route (pairwise formulas, SciPy, scikit-image), never from the
code under test.
"""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats
from skimage.transform import resize

from explain_attn import metrics
from explain_attn.metrics import arrays

# A 2×2 map with a tie: p = (1/2, 1/4, 1/4, 0).
TIED = np.array([[[2.0, 1.0], [1.0, 0.0]]])
# A 3×3 map with distinct values 1..9, row-major.
RAMP = np.arange(1.0, 10.0).reshape(1, 3, 3)
MASK_FUNCTIONS = [
    metrics.mass_in_mask,
    metrics.pointing_game,
    metrics.rank_accuracy,
    metrics.roc_auc,
    metrics.top_fraction_iou,
]
MAP_FUNCTIONS = [metrics.entropy, metrics.sparseness]
PAIR_FUNCTIONS = [
    metrics.spearman,
    metrics.pearson,
    metrics.top_fraction_overlap,
]


def _mask(*pixels, shape=(2, 2)):
    """A `(1, H, W)` mask with the given `(row, column)` pixels set."""
    mask = np.zeros((1, *shape), dtype=bool)
    for row, column in pixels:
        mask[0, row, column] = True
    return mask


def _random_maps(rng, shape, dtype=np.float64):
    return rng.random(shape).astype(dtype)


def _pairwise_auc(values, mask):
    """P(positive > negative) + P(equal) / 2, by enumerating all pairs."""
    positives, negatives = values[mask], values[~mask]
    greater = (positives[:, None] > negatives[None, :]).mean()
    equal = (positives[:, None] == negatives[None, :]).mean()
    return greater + 0.5 * equal


def _expected_top_k_hits(values, mask, k):
    """Mean hits of the top-k pixels over every order of tied pixels."""
    values, mask = values.ravel(), mask.ravel()
    hits = []
    for order in itertools.permutations(range(values.size)):
        order = np.array(order)
        ranked = order[np.argsort(-values[order], kind="stable")]
        hits.append(mask[ranked[:k]].sum())
    return float(np.mean(hits))


# --------------------------------------------------------------------------
# entropy
# --------------------------------------------------------------------------


class TestEntropy:
    def test_hand_computed(self):
        # -(1/2 ln 1/2 + 2 · 1/4 ln 1/4) = 1.5 ln 2; ln 4 = 2 ln 2.
        np.testing.assert_allclose(metrics.entropy(TIED), [0.75])
        np.testing.assert_allclose(
            metrics.entropy(TIED, normalize=False), [1.5 * math.log(2)]
        )

    def test_matches_scipy_entropy(self):
        rng = np.random.default_rng(0)
        maps = _random_maps(rng, (5, 4, 6))
        expected = [stats.entropy(m.ravel()) for m in maps]
        np.testing.assert_allclose(
            metrics.entropy(maps, normalize=False), expected, rtol=1e-12
        )
        np.testing.assert_allclose(
            metrics.entropy(maps), np.array(expected) / np.log(24)
        )

    def test_single_pixel_mass_is_zero(self):
        maps = np.zeros((1, 3, 3))
        maps[0, 1, 2] = 5.0
        np.testing.assert_array_equal(metrics.entropy(maps), [0.0])

    def test_constant_map_is_one(self):
        np.testing.assert_allclose(metrics.entropy(np.full((2, 3, 5), 7)), 1)
        np.testing.assert_allclose(
            metrics.entropy(np.ones((1, 3, 5)), normalize=False), np.log(15)
        )

    def test_all_zero_map_is_nan(self):
        result = metrics.entropy(np.concatenate([np.zeros((1, 2, 2)), TIED]))
        assert np.isnan(result[0])
        np.testing.assert_allclose(result[1], 0.75)

    def test_one_by_one_map(self):
        maps = np.ones((2, 1, 1))
        assert np.isnan(metrics.entropy(maps)).all()
        np.testing.assert_array_equal(
            metrics.entropy(maps, normalize=False), [0.0, 0.0]
        )

    def test_scale_invariant_even_for_huge_values(self):
        np.testing.assert_allclose(
            metrics.entropy(TIED * 1e305), metrics.entropy(TIED)
        )

    def test_separates_peaked_from_diffuse(self):
        # A histogram entropy scores both maps alike (two distinct values,
        # same counts); the spatial entropy does not.
        peaked = np.zeros((1, 4, 4))
        peaked[0, 0, 0] = 1.0
        diffuse = np.ones((1, 4, 4))
        diffuse[0, 0, 0] = 0.0
        assert metrics.entropy(peaked)[0] < metrics.entropy(diffuse)[0]


# --------------------------------------------------------------------------
# sparseness
# --------------------------------------------------------------------------


class TestSparseness:
    def test_hand_computed(self):
        # Sorted 0, 1, 1, 2: Σ (2i - n - 1) m_(i) = -3·0 - 1 + 1 + 3·2 = 6;
        # n Σ m = 16.
        np.testing.assert_allclose(metrics.sparseness(TIED), [6 / 16])

    def test_matches_mean_absolute_difference_form(self):
        rng = np.random.default_rng(1)
        maps = _random_maps(rng, (6, 3, 4))
        flat = maps.reshape(6, -1)
        expected = np.abs(flat[:, :, None] - flat[:, None, :]).sum(
            axis=(1, 2)
        ) / (2 * 12 * flat.sum(axis=1))
        np.testing.assert_allclose(metrics.sparseness(maps), expected)

    def test_single_pixel_mass(self):
        maps = np.zeros((1, 2, 2))
        maps[0, 1, 1] = 3.0
        np.testing.assert_allclose(metrics.sparseness(maps), [0.75])

    def test_constant_map_is_zero(self):
        np.testing.assert_allclose(metrics.sparseness(np.full((1, 3, 3), 2)), 0)

    def test_all_zero_map_is_nan(self):
        assert np.isnan(metrics.sparseness(np.zeros((1, 2, 2))))[0]

    def test_float32_input_accumulates_in_float64(self):
        rng = np.random.default_rng(2)
        maps = _random_maps(rng, (4, 8, 8), np.float32)
        np.testing.assert_array_equal(
            metrics.sparseness(maps),
            metrics.sparseness(maps.astype(np.float64)),
        )
        np.testing.assert_allclose(
            metrics.entropy(maps),
            metrics.entropy(maps.astype(np.float64)),
            rtol=1e-14,
        )


# --------------------------------------------------------------------------
# mass_in_mask
# --------------------------------------------------------------------------


class TestMassInMask:
    def test_hand_computed(self):
        np.testing.assert_allclose(
            metrics.mass_in_mask(TIED, _mask((0, 0))), [0.5]
        )
        np.testing.assert_allclose(
            metrics.mass_in_mask(TIED, _mask((0, 1), (1, 1))), [0.25]
        )
        np.testing.assert_allclose(
            metrics.mass_in_mask(TIED, _mask((1, 1))), [0.0]
        )

    def test_full_mask_is_one(self):
        assert metrics.mass_in_mask(TIED, np.ones((1, 2, 2), bool)) == 1.0

    def test_empty_mask_is_nan(self):
        assert np.isnan(metrics.mass_in_mask(TIED, _mask()))[0]

    def test_all_zero_map_is_nan(self):
        assert np.isnan(
            metrics.mass_in_mask(np.zeros((1, 2, 2)), _mask((0, 0)))
        )

    def test_constant_map_gives_mask_share(self):
        maps = np.ones((1, 3, 3))
        mask = _mask((0, 0), (2, 2), shape=(3, 3))
        np.testing.assert_allclose(metrics.mass_in_mask(maps, mask), [2 / 9])

    def test_accepts_zero_one_masks(self):
        np.testing.assert_allclose(
            metrics.mass_in_mask(TIED, np.array([[[1, 0], [0, 0]]])), [0.5]
        )


# --------------------------------------------------------------------------
# pointing_game
# --------------------------------------------------------------------------


class TestPointingGame:
    def test_hit_and_miss(self):
        np.testing.assert_array_equal(
            metrics.pointing_game(RAMP, _mask((2, 2), shape=(3, 3))), [1.0]
        )
        np.testing.assert_array_equal(
            metrics.pointing_game(RAMP, _mask((2, 1), shape=(3, 3))), [0.0]
        )

    def test_tied_maxima_score_the_share_in_the_mask(self):
        maps = np.array([[[1.0, 1.0], [0.0, 0.0]]])
        np.testing.assert_allclose(
            metrics.pointing_game(maps, _mask((0, 0))), [0.5]
        )
        np.testing.assert_allclose(
            metrics.pointing_game(maps, _mask((0, 0), (0, 1))), [1.0]
        )

    def test_constant_map_scores_chance(self):
        mask = _mask((0, 0), (1, 2), (2, 2), shape=(3, 3))
        np.testing.assert_allclose(
            metrics.pointing_game(np.ones((1, 3, 3)), mask), [3 / 9]
        )

    def test_tolerance_is_euclidean_distance_to_the_mask(self):
        maps = np.zeros((1, 5, 5))
        maps[0, 0, 0] = 1.0
        straight = _mask((0, 3), shape=(5, 5))
        diagonal = _mask((2, 2), shape=(5, 5))  # distance sqrt(8) = 2.83
        for mask, tolerance, expected in [
            (straight, 0, 0.0),
            (straight, 2, 0.0),
            (straight, 3, 1.0),
            (diagonal, 2.8, 0.0),
            (diagonal, 2.9, 1.0),
            (diagonal, 0.5, 0.0),
        ]:
            result = metrics.pointing_game(maps, mask, tolerance=tolerance)
            assert result[0] == expected, (tolerance, expected)

    def test_full_mask_is_one(self):
        assert metrics.pointing_game(RAMP, np.ones((1, 3, 3), bool)) == 1.0

    def test_empty_mask_is_nan_even_with_tolerance(self):
        assert np.isnan(metrics.pointing_game(TIED, _mask()))[0]
        assert np.isnan(metrics.pointing_game(TIED, _mask(), tolerance=5))[0]

    def test_all_zero_map_is_nan(self):
        assert np.isnan(
            metrics.pointing_game(np.zeros((1, 2, 2)), _mask((0, 0)))
        )

    @pytest.mark.parametrize("tolerance", [-1, math.nan, math.inf, "1", None])
    def test_bad_tolerance(self, tolerance):
        with pytest.raises(ValueError, match="Received: tolerance="):
            metrics.pointing_game(TIED, _mask((0, 0)), tolerance=tolerance)


# --------------------------------------------------------------------------
# rank_accuracy
# --------------------------------------------------------------------------


class TestRankAccuracy:
    def test_hand_computed(self):
        # Mask holds the values 9, 8 and 1; the top 3 are 9, 8, 7.
        mask = _mask((2, 2), (2, 1), (0, 0), shape=(3, 3))
        np.testing.assert_allclose(metrics.rank_accuracy(RAMP, mask), [2 / 3])

    def test_ties_at_the_cut_share_the_slots(self):
        # K = 2: the 2 is in; one of the two tied 1s (one in the mask).
        np.testing.assert_allclose(
            metrics.rank_accuracy(TIED, _mask((0, 0), (0, 1))), [0.75]
        )
        np.testing.assert_allclose(
            metrics.rank_accuracy(TIED, _mask((0, 1), (1, 1))), [0.25]
        )

    def test_ties_match_enumerated_orders(self):
        rng = np.random.default_rng(3)
        for _ in range(5):
            values = rng.integers(0, 3, (2, 3)).astype(float)
            mask = rng.random((2, 3)) < 0.5
            if not mask.any() or not values.any():
                continue
            expected = _expected_top_k_hits(values, mask, mask.sum())
            np.testing.assert_allclose(
                metrics.rank_accuracy(values[None], mask[None]),
                [expected / mask.sum()],
            )

    def test_single_pixel_mask_equals_pointing_game(self):
        rng = np.random.default_rng(4)
        maps = rng.integers(0, 3, (20, 3, 3)).astype(float) + 0.5
        masks = np.zeros((20, 3, 3), bool)
        masks[np.arange(20), rng.integers(0, 3, 20), rng.integers(0, 3, 20)] = 1
        np.testing.assert_allclose(
            metrics.rank_accuracy(maps, masks),
            metrics.pointing_game(maps, masks),
        )

    def test_constant_map_scores_chance(self):
        mask = _mask((0, 0), (1, 1), shape=(2, 3))
        np.testing.assert_allclose(
            metrics.rank_accuracy(np.ones((1, 2, 3)), mask), [2 / 6]
        )

    def test_full_mask_is_one(self):
        assert metrics.rank_accuracy(TIED, np.ones((1, 2, 2), bool)) == 1.0

    def test_empty_mask_and_all_zero_map_are_nan(self):
        assert np.isnan(metrics.rank_accuracy(TIED, _mask()))[0]
        assert np.isnan(
            metrics.rank_accuracy(np.zeros((1, 2, 2)), _mask((0, 0)))
        )


# --------------------------------------------------------------------------
# roc_auc
# --------------------------------------------------------------------------


class TestRocAuc:
    def test_hand_computed(self):
        # Positives 3 and 1, negatives 2 and 0: 3 of the 4 pairs ordered.
        maps = np.array([[[3.0, 2.0], [1.0, 0.0]]])
        np.testing.assert_allclose(
            metrics.roc_auc(maps, _mask((0, 0), (1, 0))), [0.75]
        )

    def test_ties_count_one_half(self):
        # Positive 1 against negatives 1, 0, 0: (1/2 + 1 + 1) / 3.
        maps = np.array([[[1.0, 1.0], [0.0, 0.0]]])
        np.testing.assert_allclose(
            metrics.roc_auc(maps, _mask((0, 0))), [5 / 6]
        )

    @pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
    def test_matches_pairwise_definition(self, dtype):
        rng = np.random.default_rng(5)
        maps = rng.integers(0, 4, (30, 4, 5)).astype(dtype)
        maps[:10] = _random_maps(rng, (10, 4, 5)).astype(dtype)
        masks = rng.random((30, 4, 5)) < 0.4
        masks[:, 0, 0] = True
        masks[:, 0, 1] = False
        maps[:, 1, 1] = 1  # no all-zero map
        expected = [
            _pairwise_auc(m.ravel(), k.ravel())
            for m, k in zip(maps, masks, strict=True)
        ]
        np.testing.assert_allclose(metrics.roc_auc(maps, masks), expected)

    def test_negative_zero_ties_with_zero(self):
        maps = np.array([[[-0.0, 0.0], [1.0, 0.0]]], dtype=np.float32)
        np.testing.assert_allclose(
            metrics.roc_auc(maps, _mask((0, 0))), [0.5 * 2 / 3]
        )

    def test_single_pixel_mask(self):
        np.testing.assert_allclose(
            metrics.roc_auc(RAMP, _mask((1, 1), shape=(3, 3))), [4 / 8]
        )

    def test_constant_map_is_one_half(self):
        np.testing.assert_allclose(
            metrics.roc_auc(np.ones((1, 2, 2)), _mask((0, 0))), [0.5]
        )

    def test_empty_full_and_all_zero_are_nan(self):
        assert np.isnan(metrics.roc_auc(TIED, _mask()))[0]
        assert np.isnan(metrics.roc_auc(TIED, np.ones((1, 2, 2), bool)))[0]
        assert np.isnan(metrics.roc_auc(np.zeros((1, 2, 2)), _mask((0, 0))))


# --------------------------------------------------------------------------
# top_fraction_iou
# --------------------------------------------------------------------------


class TestTopFractionIou:
    def test_hand_computed(self):
        # k = 2: top set {9, 8}; mask {9, 7}: IoU = 1 / 3.
        mask = _mask((2, 2), (2, 0), shape=(3, 3))
        np.testing.assert_allclose(
            metrics.top_fraction_iou(RAMP, mask, fraction=2 / 9), [1 / 3]
        )

    def test_perfect_overlap(self):
        mask = _mask((2, 2), (2, 1), shape=(3, 3))
        np.testing.assert_allclose(
            metrics.top_fraction_iou(RAMP, mask, fraction=2 / 9), [1.0]
        )

    def test_default_fraction_keeps_one_fifth(self):
        # 0.2 · 25 = 5 pixels exactly (not 6 from rounding error).
        maps = np.arange(25.0).reshape(1, 5, 5)
        mask = np.zeros((1, 5, 5), bool)
        mask[0, 4] = True  # the five largest values
        assert metrics.DEFAULT_FRACTION == 0.2
        np.testing.assert_allclose(metrics.top_fraction_iou(maps, mask), [1])

    def test_ties_at_the_cut_are_fuzzy(self):
        # k = 2: w = (1, 1/2, 1/2, 0); mask = the second pixel:
        # Σ min = 1/2, Σ max = 1 + 1 + 1/2 = 2.5.
        np.testing.assert_allclose(
            metrics.top_fraction_iou(TIED, _mask((0, 1)), fraction=0.5),
            [0.2],
        )

    def test_full_mask_is_top_share(self):
        np.testing.assert_allclose(
            metrics.top_fraction_iou(
                RAMP, np.ones((1, 3, 3), bool), fraction=1 / 3
            ),
            [3 / 9],
        )

    def test_single_pixel_mask(self):
        np.testing.assert_allclose(
            metrics.top_fraction_iou(
                RAMP, _mask((2, 2), shape=(3, 3)), fraction=0.1
            ),
            [1.0],
        )

    def test_constant_map(self):
        # w = 1/4 everywhere, mask of one pixel: 1/4 / (1 + 1 - 1/4).
        np.testing.assert_allclose(
            metrics.top_fraction_iou(
                np.ones((1, 2, 2)), _mask((0, 0)), fraction=0.25
            ),
            [0.25 / 1.75],
        )

    def test_empty_mask_and_all_zero_map_are_nan(self):
        assert np.isnan(metrics.top_fraction_iou(TIED, _mask()))[0]
        assert np.isnan(
            metrics.top_fraction_iou(np.zeros((1, 2, 2)), _mask((0, 0)))
        )[0]

    @pytest.mark.parametrize("fraction", [0, -0.1, 1.5, math.nan, True, "0.2"])
    def test_bad_fraction(self, fraction):
        with pytest.raises(ValueError, match="Received: fraction="):
            metrics.top_fraction_iou(TIED, _mask((0, 0)), fraction=fraction)


# --------------------------------------------------------------------------
# Shared behaviour of the per-image metrics
# --------------------------------------------------------------------------


def _skimage_bilinear(maps, shape):
    """Each map resized by scikit-image in float64, as the metrics define
    the resize (bilinear, half-pixel centres, clamped edges)."""
    return np.stack(
        [
            resize(
                m.astype(np.float64),
                shape,
                order=1,
                mode="edge",
                anti_aliasing=False,
            )
            for m in maps
        ]
    )


class TestResize:
    @pytest.mark.parametrize(
        ("source", "target"),
        [((3, 4), (8, 7)), ((9, 8), (4, 5)), ((2, 2), (2, 6))],
    )
    def test_matches_skimage_bilinear(self, source, target):
        rng = np.random.default_rng(6)
        maps = _random_maps(rng, (3, *source))
        expected = _skimage_bilinear(maps, target)
        np.testing.assert_allclose(
            arrays.resize(maps, target), expected, atol=1e-12
        )

    def test_many_maps_in_blocks_and_float32_match_skimage(self):
        # 200 maps to 64 x 48: blocks of 42 images, the last one partial.
        rng = np.random.default_rng(16)
        maps = _random_maps(rng, (200, 5, 4), np.float32)
        expected = _skimage_bilinear(maps, (64, 48))
        resized = arrays.resize(maps, (64, 48))
        assert resized.dtype == np.float64
        np.testing.assert_allclose(resized, expected, atol=1e-12)

    def test_enlarging_float32_maps_four_times_is_exact(self):
        # Weights 1/8, 3/8, 5/8, 7/8 (or 1 and 0 at the edges) on float32
        # values: every product and sum is exact in float64, so any
        # correct bilinear resize gives the same bits.
        rng = np.random.default_rng(17)
        maps = _random_maps(rng, (3, 5, 6), np.float32)
        expected = _skimage_bilinear(maps, (20, 24))
        np.testing.assert_array_equal(arrays.resize(maps, (20, 24)), expected)

    @pytest.mark.parametrize("function", MASK_FUNCTIONS)
    def test_maps_are_resized_to_the_masks(self, function):
        rng = np.random.default_rng(7)
        maps = _random_maps(rng, (4, 3, 3))
        masks = rng.random((4, 6, 6)) < 0.4
        masks[:, 0, 0] = True
        masks[:, 5, 5] = False
        upsampled = np.stack(
            [
                resize(m, (6, 6), order=1, mode="edge", anti_aliasing=False)
                for m in maps
            ]
        )
        np.testing.assert_allclose(
            function(maps, masks), function(upsampled, masks), atol=1e-12
        )


@pytest.mark.parametrize("function", MASK_FUNCTIONS)
class TestMaskMetricsContract:
    def test_shape_and_dtype(self, function):
        rng = np.random.default_rng(8)
        maps = _random_maps(rng, (5, 4, 4), np.float32)
        masks = rng.random((5, 4, 4)) < 0.5
        result = function(maps, masks)
        assert result.shape == (5,)
        assert result.dtype == np.float64

    def test_empty_batch(self, function):
        result = function(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool))
        assert result.shape == (0,)

    def test_does_not_mutate_inputs(self, function):
        rng = np.random.default_rng(9)
        maps = _random_maps(rng, (3, 4, 4))
        masks = rng.random((3, 4, 4)) < 0.5
        maps_copy, masks_copy = maps.copy(), masks.copy()
        function(maps, masks)
        np.testing.assert_array_equal(maps, maps_copy)
        np.testing.assert_array_equal(masks, masks_copy)

    def test_nan_only_where_mask_is_empty(self, function):
        rng = np.random.default_rng(10)
        maps = _random_maps(rng, (3, 4, 4))
        masks = rng.random((3, 4, 4)) < 0.5
        masks[:, 0, 0], masks[:, 0, 1] = True, False
        masks[1] = False
        result = function(maps, masks)
        np.testing.assert_array_equal(np.isnan(result), [False, True, False])

    def test_number_of_images_must_match(self, function):
        with pytest.raises(ValueError, match=r"len\(maps\)=1, len\(masks\)=2"):
            function(TIED, np.ones((2, 2, 2), bool))

    def test_masks_must_have_rank_3(self, function):
        with pytest.raises(ValueError, match=r"Received: masks.shape=\(2, 2\)"):
            function(TIED, np.ones((2, 2), bool))

    def test_masks_must_be_boolean(self, function):
        with pytest.raises(ValueError, match=r"values \[2\]"):
            function(TIED, np.full((1, 2, 2), 2))
        with pytest.raises(TypeError, match="masks.dtype"):
            function(TIED, np.full((1, 2, 2), "a"))


@pytest.mark.parametrize("function", MASK_FUNCTIONS + MAP_FUNCTIONS)
class TestMapValidation:
    @staticmethod
    def _call(function, maps):
        if function in MAP_FUNCTIONS:
            return function(maps)
        masks = np.ones(np.shape(maps), bool) if np.ndim(maps) == 3 else None
        return function(maps, masks if masks is not None else TIED > 0)

    def test_rank(self, function):
        with pytest.raises(ValueError, match=r"Received: maps.shape=\(2, 2\)"):
            self._call(function, np.ones((2, 2)))

    def test_negative(self, function):
        with pytest.raises(
            ValueError, match=r"non-negative.*Received: min\(maps\)=-2.0"
        ):
            self._call(function, -TIED)

    @pytest.mark.parametrize("bad", [math.nan, math.inf])
    def test_not_finite(self, function, bad):
        maps = TIED.copy()
        maps[0, 0, 0] = bad
        with pytest.raises(ValueError, match="must be finite"):
            self._call(function, maps)

    def test_not_numeric(self, function):
        with pytest.raises(TypeError, match="maps.dtype"):
            self._call(function, np.full((1, 2, 2), "x"))

    def test_no_pixels(self, function):
        with pytest.raises(ValueError, match="at least one pixel"):
            self._call(function, np.ones((1, 0, 2)))


def test_map_metrics_shape_dtype_and_empty_batch():
    for function in MAP_FUNCTIONS:
        assert function(np.ones((3, 2, 2), np.float32)).dtype == np.float64
        assert function(np.ones((3, 2, 2))).shape == (3,)
        assert function(np.zeros((0, 2, 2))).shape == (0,)


# --------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------


class TestAgreement:
    def test_pearson_matches_scipy(self):
        rng = np.random.default_rng(11)
        maps_a = _random_maps(rng, (6, 4, 5))
        maps_b = maps_a + 0.5 * _random_maps(rng, (6, 4, 5)) - 0.2
        expected = [
            stats.pearsonr(a.ravel(), b.ravel()).statistic
            for a, b in zip(maps_a, maps_b, strict=True)
        ]
        np.testing.assert_allclose(metrics.pearson(maps_a, maps_b), expected)

    def test_spearman_matches_scipy_with_ties(self):
        rng = np.random.default_rng(12)
        maps_a = rng.integers(0, 4, (20, 3, 4)).astype(np.float32)
        maps_b = rng.integers(0, 5, (20, 3, 4)).astype(np.float64)
        maps_a[:, 0, 0], maps_a[:, 0, 1] = 0, 1  # never constant
        maps_b[:, 0, 0], maps_b[:, 0, 1] = 0, 1
        expected = [
            stats.spearmanr(a.ravel(), b.ravel()).statistic
            for a, b in zip(maps_a, maps_b, strict=True)
        ]
        np.testing.assert_allclose(metrics.spearman(maps_a, maps_b), expected)

    def test_hand_computed_correlations(self):
        reversed_ramp = RAMP[:, ::-1, ::-1]
        np.testing.assert_allclose(metrics.spearman(RAMP, RAMP**2), [1.0])
        np.testing.assert_allclose(metrics.pearson(RAMP, 2 * RAMP + 1), [1.0])
        np.testing.assert_allclose(metrics.pearson(RAMP, reversed_ramp), [-1])
        np.testing.assert_allclose(metrics.spearman(RAMP, reversed_ramp), [-1])

    def test_top_fraction_overlap_hand_computed(self):
        reversed_ramp = RAMP[:, ::-1, ::-1]
        # Top 2 of the ramp: the 9 and the 8.
        shifted = RAMP.copy()
        shifted[0, 2, 1] = 0.0  # top 2 now the 9 and the 7: IoU 1/3
        for other, expected in [
            (RAMP, 1.0),
            (reversed_ramp, 0.0),
            (shifted, 1 / 3),
        ]:
            np.testing.assert_allclose(
                metrics.top_fraction_overlap(RAMP, other, fraction=2 / 9),
                [expected],
            )

    def test_top_fraction_overlap_with_ties(self):
        # u = (1, 1/2, 1/2, 0), v = (1, 0, 1/2, 1/2): 1.5 / 2.5.
        other = np.array([[[2.0, 0.0], [1.0, 1.0]]])
        np.testing.assert_allclose(
            metrics.top_fraction_overlap(TIED, other, fraction=0.5), [0.6]
        )

    @pytest.mark.parametrize("function", PAIR_FUNCTIONS)
    def test_constant_map_is_nan(self, function):
        result = function(
            np.concatenate([np.ones((1, 2, 2)), TIED, np.zeros((1, 2, 2))]),
            np.concatenate([TIED, np.full((1, 2, 2), 3.0), TIED]),
        )
        assert np.isnan(result).all()

    @pytest.mark.parametrize("function", PAIR_FUNCTIONS)
    def test_different_resolutions_go_to_the_larger(self, function):
        # `arrays.resize` itself is checked against scikit-image above; here it
        # gives exact ties where scikit-image's coordinates are off by 1 ulp,
        # which matters to ranks.
        rng = np.random.default_rng(13)
        small = _random_maps(rng, (3, 2, 3))
        large = _random_maps(rng, (3, 6, 6))
        upsampled = arrays.resize(small, (6, 6))
        np.testing.assert_allclose(
            function(small, large), function(upsampled, large)
        )
        np.testing.assert_allclose(
            function(large, small), function(large, upsampled)
        )
        wide = _random_maps(rng, (3, 2, 8))
        np.testing.assert_allclose(
            function(wide, small),
            function(arrays.resize(wide, (2, 8)), arrays.resize(small, (2, 8))),
        )

    @pytest.mark.parametrize("function", PAIR_FUNCTIONS)
    def test_symmetric_and_accepts_signed_maps(self, function):
        rng = np.random.default_rng(14)
        maps_a = rng.normal(size=(4, 5, 5))
        maps_b = rng.normal(size=(4, 5, 5))
        result = function(maps_a, maps_b)
        assert result.shape == (4,) and result.dtype == np.float64
        np.testing.assert_allclose(result, function(maps_b, maps_a))

    @pytest.mark.parametrize("function", PAIR_FUNCTIONS)
    def test_validation(self, function):
        with pytest.raises(ValueError, match="same number of images"):
            function(TIED, np.ones((2, 2, 2)))
        with pytest.raises(ValueError, match=r"maps_b.shape=\(4,\)"):
            function(TIED, np.ones(4))
        with pytest.raises(ValueError, match="maps_a.*must be finite"):
            function(TIED * np.nan, TIED)

    def test_top_fraction_overlap_bad_fraction(self):
        with pytest.raises(ValueError, match="Received: fraction=2"):
            metrics.top_fraction_overlap(TIED, TIED, fraction=2)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


class TestSummarize:
    def test_hand_computed(self):
        summary = metrics.summarize([1.0, 2.0, 3.0, math.nan, 10.0])
        assert summary["n"] == 4 and summary["nan_count"] == 1
        assert summary["mean"] == 4.0 and summary["median"] == 2.5
        assert 1.0 <= summary["ci_low"] < 4.0 < summary["ci_high"] <= 10.0

    def test_interval_matches_normal_theory_for_large_n(self):
        rng = np.random.default_rng(15)
        values = rng.normal(3.0, 2.0, size=2000)
        summary = metrics.summarize(values)
        half_width = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
        assert summary["ci_low"] == pytest.approx(
            values.mean() - half_width, abs=0.1 * half_width
        )
        assert summary["ci_high"] == pytest.approx(
            values.mean() + half_width, abs=0.1 * half_width
        )

    def test_seeded(self):
        values = np.random.default_rng(16).random(50)
        assert metrics.summarize(values, seed=3) == metrics.summarize(
            values, seed=3
        )
        assert metrics.summarize(values, seed=3) != metrics.summarize(
            values, seed=4
        )

    def test_json_ready(self):
        summary = metrics.summarize(np.array([1, 2, 3], np.int32))
        assert type(summary["n"]) is int and type(summary["mean"]) is float
        json.dumps(summary)

    def test_degenerate(self):
        empty = metrics.summarize([math.nan, math.nan])
        assert empty["n"] == 0 and empty["nan_count"] == 2
        assert all(math.isnan(empty[k]) for k in ("mean", "median", "ci_low"))
        single = metrics.summarize([0.5])
        assert single["mean"] == single["median"] == 0.5
        assert math.isnan(single["ci_low"]) and math.isnan(single["ci_high"])
        same = metrics.summarize([0.25] * 5)
        assert same["ci_low"] == same["ci_high"] == 0.25

    def test_validation(self):
        with pytest.raises(ValueError, match=r"values.shape=\(2, 2\)"):
            metrics.summarize(np.ones((2, 2)))
        with pytest.raises(ValueError, match="infinite"):
            metrics.summarize([1.0, math.inf])
        with pytest.raises(ValueError, match="confidence=1.0"):
            metrics.summarize([1.0, 2.0], confidence=1.0)
        with pytest.raises(ValueError, match="num_resamples=0"):
            metrics.summarize([1.0, 2.0], num_resamples=0)


class TestPairedDifference:
    def test_hand_computed(self):
        # d = (1, 0, 2, 3, 4): the zero is dropped, the 4 others are all
        # positive: exact two-sided p = 2 / 2**4.
        result = metrics.paired_difference([1, 2, 3, 4, 5], [0, 2, 1, 1, 1])
        assert result["n"] == 5 and result["nan_count"] == 0
        assert result["mean_difference"] == 2.0
        assert result["p_value"] == pytest.approx(0.125)
        assert 0.0 <= result["ci_low"] < 2.0 < result["ci_high"] <= 4.0

    def test_swapping_negates(self):
        rng = np.random.default_rng(17)
        values_a, values_b = rng.random(40), rng.random(40)
        forward = metrics.paired_difference(values_a, values_b)
        backward = metrics.paired_difference(values_b, values_a)
        assert forward["mean_difference"] == pytest.approx(
            -backward["mean_difference"]
        )
        assert forward["p_value"] == pytest.approx(backward["p_value"])
        assert forward["ci_low"] == pytest.approx(-backward["ci_high"])

    def test_nan_pairs_are_dropped_and_counted(self):
        result = metrics.paired_difference(
            [1.0, math.nan, 3.0, 4.0], [0.0, 1.0, math.nan, 2.0]
        )
        assert result["n"] == 2 and result["nan_count"] == 2
        assert result["mean_difference"] == 1.5

    def test_all_differences_zero(self):
        result = metrics.paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        assert result["mean_difference"] == 0.0
        assert result["ci_low"] == result["ci_high"] == 0.0
        assert result["p_value"] == 1.0

    def test_fewer_than_two_pairs(self):
        single = metrics.paired_difference([2.0], [0.5])
        assert single["n"] == 1 and single["mean_difference"] == 1.5
        assert math.isnan(single["p_value"]) and math.isnan(single["ci_low"])
        empty = metrics.paired_difference([], [])
        assert empty["n"] == 0 and math.isnan(empty["mean_difference"])
        json.dumps(empty)

    def test_large_sample_with_ties(self):
        rng = np.random.default_rng(18)
        values_a = rng.integers(0, 3, 80).astype(float)
        values_b = rng.integers(0, 3, 80).astype(float)
        result = metrics.paired_difference(values_a, values_b)
        expected = stats.wilcoxon(values_a - values_b).pvalue
        assert result["p_value"] == pytest.approx(expected)

    def test_validation(self):
        with pytest.raises(ValueError, match="values_b.shape=\\(2,\\)"):
            metrics.paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])

    def test_many_pairs_at_once_are_each_pairs_result(self):
        rng = np.random.default_rng(19)
        a, b = rng.random((2, 6, 40))
        a[1, :5] = math.nan  # 35 complete pairs: its own draws.
        b[2] = a[2]  # All differences zero.
        pairs = [*zip(a, b, strict=True), ([2.0], [0.5]), ([], [])]
        found = metrics.paired_differences(pairs, seed=3, num_resamples=2000)
        assert found == [
            metrics.paired_difference(x, y, seed=3, num_resamples=2000)
            for x, y in pairs
        ]
        # Independently: SciPy's percentile bootstrap draws the same
        # resamples from the same generator (its endpoints round
        # differently, within 1e-15).
        expected = stats.bootstrap(
            (a[0] - b[0],),
            np.mean,
            n_resamples=2000,
            method="percentile",
            rng=np.random.default_rng(3),
        ).confidence_interval
        assert found[0]["ci_low"] == pytest.approx(expected.low, abs=1e-12)
        assert found[0]["ci_high"] == pytest.approx(expected.high, abs=1e-12)
        assert found[1]["n"] == 35 and found[2]["p_value"] == 1.0


class TestAccuracyInterval:
    def test_hand_computed(self):
        # Wilson, 8 of 10, z = 1.959964: centre 0.7167, half-width 0.2266.
        result = metrics.accuracy_interval([True] * 8 + [False] * 2)
        assert result["n"] == 10 and result["accuracy"] == 0.8
        assert result["ci_low"] == pytest.approx(0.49016, abs=1e-5)
        assert result["ci_high"] == pytest.approx(0.94332, abs=1e-5)

    @pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (37, 120), (1, 1)])
    def test_matches_scipy_binomtest(self, k, n):
        result = metrics.accuracy_interval(np.arange(n) < k)
        expected = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert result["ci_low"] == pytest.approx(expected.low, abs=1e-12)
        assert result["ci_high"] == pytest.approx(expected.high, abs=1e-12)

    def test_extremes_stay_in_unit_interval(self):
        none = metrics.accuracy_interval([0, 0, 0])
        assert none["ci_low"] == 0.0 and 0.0 < none["ci_high"] < 1.0
        every = metrics.accuracy_interval([1, 1, 1])
        assert every["ci_high"] == 1.0 and 0.0 < every["ci_low"] < 1.0

    def test_empty(self):
        result = metrics.accuracy_interval([])
        assert result["n"] == 0 and math.isnan(result["accuracy"])

    def test_validation(self):
        with pytest.raises(ValueError, match="boolean"):
            metrics.accuracy_interval([0, 1, 2])
        with pytest.raises(ValueError, match=r"correct.shape=\(1, 2\)"):
            metrics.accuracy_interval([[True, False]])
        with pytest.raises(ValueError, match="confidence=0"):
            metrics.accuracy_interval([True], confidence=0)


# --------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------


def test_registries():
    assert list(metrics.PER_IMAGE_METRICS) == [
        "entropy",
        "sparseness",
        "mass_in_mask",
        "pointing_game",
        "rank_accuracy",
        "roc_auc",
        "top_fraction_iou",
    ]
    assert set(metrics.CONCENTRATION_METRICS) | set(
        metrics.FOREGROUND_METRICS
    ) == set(metrics.PER_IMAGE_METRICS)
    rng = np.random.default_rng(19)
    maps = _random_maps(rng, (2, 4, 4))
    masks = rng.random((2, 4, 4)) < 0.5
    masks[:, 0, 0], masks[:, 0, 1] = True, False
    for function in metrics.CONCENTRATION_METRICS.values():
        assert function(maps).shape == (2,)
    for function in metrics.FOREGROUND_METRICS.values():
        assert function(maps, masks).shape == (2,)
    for function in metrics.AGREEMENT_METRICS.values():
        assert function(maps, maps).shape == (2,)


def test_every_metric_has_a_short_definition():
    names = set(metrics.PER_IMAGE_METRICS) | set(metrics.AGREEMENT_METRICS)
    assert set(metrics.METRIC_DEFINITIONS) == names
    for definition in metrics.METRIC_DEFINITIONS.values():
        assert 0 < definition.count(". ") + 1 <= 2 and definition.endswith(".")


def test_no_tensorflow_import():
    import subprocess
    import sys

    code = (
        "import sys, importlib.util, pathlib;"
        "spec = importlib.util.spec_from_file_location('m', "
        f"{str(metrics.__file__)!r});"
        "module = importlib.util.module_from_spec(spec);"
        "spec.loader.exec_module(module);"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
