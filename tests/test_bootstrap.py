"""The Poisson bootstrap keyed by image: the same draws however images are
split, sums that add up, intervals checked by hand."""

import math
from fractions import Fraction

import numpy as np
import pytest

from explain_attn import metrics


def test_weights_depend_on_seed_image_and_replicate_only():
    ids = np.array([5, 0, 17, 3, 9, 100_000])
    weights = metrics.poisson_weights(ids, num_resamples=50, seed=7)
    assert weights.shape == (50, 6) and weights.dtype == np.uint8
    # Any subset, in any order, gets the same counts per image.
    order = np.array([3, 5, 0])
    np.testing.assert_array_equal(
        metrics.poisson_weights(ids[order], num_resamples=50, seed=7),
        weights[:, order],
    )
    # Replicates 20 to 49 alone are the same as within the 50.
    np.testing.assert_array_equal(
        metrics.poisson_weights(ids, num_resamples=30, seed=7, first=20),
        weights[20:],
    )
    other = metrics.poisson_weights(ids, num_resamples=50, seed=8)
    assert (other != weights).any()


def _splitmix(value):
    """SplitMix64's output function on one Python int (mod 2**64)."""
    mask = 2**64 - 1
    z = (value + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_weights_are_splitmix_counts_by_hand():
    # Seed, then image id, then replicate, one number at a time in Python
    # integers; 53 bits to a uniform, inverted through Poisson(1)'s
    # distribution function. More replicates and images than one block
    # of the vectorised draw, so block edges are covered.
    ids = [0, 3, 70_000, 2**40 + 1]
    cdf = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(19)])
    first, replicates = 5, 16_500
    weights = metrics.poisson_weights(
        ids, num_resamples=replicates, seed=11, first=first
    )
    rows = [0, 1, 16_383, 16_384, 16_499]
    for b in rows:
        for j, image in enumerate(ids):
            per_image = _splitmix(_splitmix(11) ^ image)
            bits = _splitmix(per_image ^ _splitmix(first + b))
            uniform = (bits >> 11) * 2.0**-53
            expected = int(np.searchsorted(cdf, uniform, side="right"))
            assert weights[b, j] == expected, (b, j)
    assert weights.shape == (replicates, 4)


def test_weights_follow_poisson_one():
    weights = metrics.poisson_weights(
        np.arange(20_000), num_resamples=10, seed=0
    ).ravel()
    shares = np.bincount(weights, minlength=5)[:5] / weights.size
    expected = [math.exp(-1) / math.factorial(k) for k in range(5)]
    # 200,000 draws: each share within 4 standard errors (<= 0.0043).
    np.testing.assert_allclose(shares, expected, atol=0.0045)
    assert abs(weights.mean() - 1.0) < 0.01


def test_interval_by_hand():
    values = np.array([1.0, 4.0, np.nan, 2.5])
    keyed = metrics.PoissonBootstrap(4, num_resamples=200, seed=3)
    weights = keyed.weights.tolist()
    means = []
    for row in weights:  # Pure Python: sum(w x) / sum(w) over finite values.
        total = sum(w * x for w, x in zip(row, values, strict=True) if x == x)
        count = sum(w for w, x in zip(row, values, strict=True) if x == x)
        if count:
            means.append(total / count)
    low, high = np.quantile(means, [0.025, 0.975])
    result = metrics.summarize(values, bootstrap=keyed)
    assert result["n"] == 3 and result["nan_count"] == 1
    assert result["mean"] == pytest.approx(2.5)
    assert result["ci_low"] == pytest.approx(low, abs=1e-12)
    assert result["ci_high"] == pytest.approx(high, abs=1e-12)


def test_shards_sums_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    values = rng.normal(size=300)
    keyed = metrics.PoissonBootstrap(300, num_resamples=500, seed=1)
    parts = [slice(0, 100), slice(100, 101), slice(101, 300)]
    sums = [keyed.take(part).sums(values[part]) for part in parts]
    totals = sum(s[0] for s in sums)
    counts = sum(s[1] for s in sums)
    whole = keyed.sums(values)
    np.testing.assert_allclose(totals, whole[0], rtol=1e-12)
    np.testing.assert_array_equal(counts, whole[1])
    low, high = metrics.interval_from_sums(totals, counts)
    expected = metrics.summarize(values, bootstrap=keyed)
    assert low == pytest.approx(expected["ci_low"], abs=1e-12)
    assert high == pytest.approx(expected["ci_high"], abs=1e-12)


def test_paired_difference_and_degenerate_cases():
    a = np.array([0.5, 0.7, 0.9, 0.4])
    b = np.array([0.5, 0.6, 0.5, 0.1])
    keyed = metrics.PoissonBootstrap(4, num_resamples=300, seed=0)
    paired = metrics.paired_difference(a, b, bootstrap=keyed)
    direct = metrics.summarize(a - b, bootstrap=keyed)
    assert (paired["ci_low"], paired["ci_high"]) == (
        direct["ci_low"],
        direct["ci_high"],
    )
    one = metrics.summarize([2.0], bootstrap=keyed.take([0]))
    assert one["mean"] == 2.0 and math.isnan(one["ci_low"])
    constant = metrics.summarize([3.0] * 4, bootstrap=keyed)
    assert constant["ci_low"] == constant["ci_high"] == 3.0
    with pytest.raises(ValueError, match="one image per value"):
        metrics.summarize([1.0, 2.0], bootstrap=keyed)
    with pytest.raises(TypeError, match="Received: bootstrap="):
        metrics.summarize([1.0, 2.0], bootstrap="poisson")
    with pytest.raises(ValueError, match="image_ids"):
        metrics.poisson_weights([-1, 2], num_resamples=2)


def _exact_means(weights, values):
    """Replicate means from exact rational sums (Fractions), then rounded:
    an independent computation of what `BootstrapSums` keeps exact."""
    means = []
    for row in weights.tolist():
        pairs = [(w, x) for w, x in zip(row, values, strict=True) if x == x]
        count = sum(w for w, _ in pairs)
        if count:
            total = sum(Fraction(w) * Fraction(x) for w, x in pairs)
            means.append(float(total / count))
    return means


def test_sums_of_three_and_four_images_give_the_whole_interval():
    # 7 images split 3 + 4, values of very different sizes and signs.
    values = np.array([0.25, -3.5e-7, np.nan, 1e12, 2.0**-60, -1e12, 7.125])
    keyed = metrics.PoissonBootstrap(7, num_resamples=400, seed=11)
    first, second = slice(0, 3), slice(3, 7)
    parts = [
        keyed.take(part).keyed_sums(values[part]) for part in (first, second)
    ]
    whole = keyed.keyed_sums(values)
    for summed in (parts[0] + parts[1], parts[1] + parts[0]):
        assert summed.size == whole.size == 6
        np.testing.assert_array_equal(summed.counts, whole.counts)
        np.testing.assert_array_equal(summed.totals(), whole.totals())
        assert summed.interval() == whole.interval()
    # The totals are the exact sums (to rounding); the counts sum(w).
    exact = [
        sum(
            Fraction(w) * Fraction(x)
            for w, x in zip(row, values, strict=True)
            if x == x
        )
        for row in keyed.weights.tolist()
    ]
    np.testing.assert_allclose(
        whole.totals(), [float(t) for t in exact], rtol=1e-15, atol=0
    )
    present = ~np.isnan(values)
    np.testing.assert_array_equal(
        whole.counts, keyed.weights[:, present].sum(axis=1)
    )
    means = _exact_means(keyed.weights, values)
    low, high = np.quantile(means, [0.025, 0.975])
    summary = metrics.summarize(values, bootstrap=parts[0] + parts[1])
    assert summary["ci_low"] == pytest.approx(low, rel=1e-12)
    assert summary["ci_high"] == pytest.approx(high, rel=1e-12)
    assert summary == metrics.summarize(values, bootstrap=keyed)


def test_paired_sums_and_sums_of_other_values_refused():
    a = np.array([0.5, 0.7, 0.9, 0.4, np.nan, 0.3, 0.8])
    b = np.array([0.5, 0.6, 0.5, 0.1, 0.2, np.nan, 0.1])
    keyed = metrics.PoissonBootstrap(7, num_resamples=300, seed=2)
    halves = [slice(0, 3), slice(3, 7)]
    sums = [keyed.take(h).keyed_sums(a[h] - b[h]) for h in halves]
    merged = metrics.paired_difference(a, b, bootstrap=sums[0] + sums[1])
    assert merged == metrics.paired_difference(a, b, bootstrap=keyed)
    assert merged["n"] == 5
    means = _exact_means(keyed.weights, a - b)
    low, high = np.quantile(means, [0.025, 0.975])
    assert merged["ci_low"] == pytest.approx(low, rel=1e-12)
    assert merged["ci_high"] == pytest.approx(high, rel=1e-12)
    with pytest.raises(ValueError, match="sums of 2 values and 5 values"):
        metrics.paired_difference(a, b, bootstrap=sums[1])


def test_sums_of_many_vectors_are_each_vectors_exact_sums():
    # 70 vectors of 5 images (NaN, tiny and huge values among them): more
    # digit columns than one stacked product holds (256), so several.
    rng = np.random.default_rng(4)
    vectors = [
        rng.normal(size=5) * 10.0 ** rng.integers(-9, 9) for _ in range(70)
    ]
    vectors[3][1] = np.nan
    vectors[40][:] = np.nan
    vectors[41][:] = 0.0
    keyed = metrics.PoissonBootstrap(5, num_resamples=30, seed=1)
    found = keyed.keyed_sums_of(vectors)
    assert len(found) == 70
    assert sum(s.digits.shape[1] + 1 for s in found) > 256
    for values, sums in zip(vectors, found, strict=True):
        present = ~np.isnan(values)
        exact = [
            sum(
                Fraction(w) * Fraction(x)
                for w, x in zip(row, values, strict=True)
                if x == x
            )
            for row in keyed.weights.tolist()
        ]
        # The digits hold the exact sums (Fractions): nothing was rounded.
        held = [
            sum(
                Fraction(int(d)) * Fraction(2) ** (20 * (sums.first + j))
                for j, d in enumerate(row)
            )
            for row in sums.digits.tolist()
        ]
        assert held == exact
        np.testing.assert_array_equal(
            sums.counts, keyed.weights[:, present].sum(axis=1)
        )
        assert sums.size == present.sum()
