"""Statistics that feed every number a report shows.

`summarize`, `paired_difference` and `accuracy_interval`, each returning a
dict of plain Python numbers (JSON-ready; NaN where undefined).
"""

import math

import numpy as np
from scipy import stats

from explain_attn.metrics.arrays import check_real
from explain_attn.metrics.bootstrap import BootstrapSums, PoissonBootstrap
from explain_attn.options import check_positive_int, check_share


def _as_values(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be one-dimensional (one value per image). "
            f"Received: {name}.shape={array.shape}"
        )
    check_real(array, name)
    array = array.astype(np.float64)
    if np.isinf(array).any():
        raise ValueError(
            f"`{name}` must not contain infinite values (NaN marks a "
            f"missing value). Received: {name} with "
            f"{int(np.isinf(array).sum())} infinite values"
        )
    return array


# Not `scipy.stats.bootstrap(..., method="percentile")`, measured with
# SciPy 1.17.1 and NumPy 2.4.6 on 168 cases (n from 2 to 5000, seeds 0, 1
# and 42, 1 to 10 000 resamples, confidence 0.9 and 0.95, tied values or
# not): with `rng=np.random.default_rng(seed)` its draws are ours bit for
# bit (its `bootstrap_distribution` equals `means` below, with or without
# our chunks as `batch`), but its interval endpoints differ from ours in 41
# of the 168 cases, by up to 2.2e-16. Both take the "linear" (type 7)
# quantile, but `scipy.stats.quantile` computes it as
# `(1 - g) y[j] + g y[j + 1]` at position `p n + 1 - p`, and `np.quantile`
# from position `p (n - 1)` with its own interpolation, which rounds
# differently: on 600 random distributions at three confidence levels the
# two disagree in 944 of the 1800 intervals (by up to 2.2e-14). The report's
# intervals are pinned, so `np.quantile` stays. SciPy would also draw all
# `(resamples, n)` indices at once, where this loop keeps them to about 4 M.
def _bootstrap_mean_interval(values, *, confidence, num_resamples, seed):
    """Percentile-bootstrap interval of the mean of 1-D finite `values`."""
    return _bootstrap_mean_intervals(
        [values], confidence=confidence, num_resamples=num_resamples, seed=seed
    )[0]


def _bootstrap_mean_intervals(rows, *, confidence, num_resamples, seed):
    """`_bootstrap_mean_interval` of each of ``rows`` (1-D finite arrays of
    one length): the same draws, made once for all rows.

    The draws depend on ``seed`` and the length only, so rows of one
    length share them; each row's means are taken from the same indices
    with the same operations as alone, so its interval is the same to the
    bit. Drawing once for 16 rows of 1,000 values: 0.9-1.0 -> 0.4-0.5 CPU s
    (`benchmarks/RESULTS.md`, issue 27, third round).
    """
    rng = np.random.default_rng(seed)
    num_values = len(rows[0])
    means = np.empty((len(rows), num_resamples))
    # Chunks keep the (resamples, n) index array to about 4 M entries.
    chunk = max(1, 4_000_000 // num_values)
    for start in range(0, num_resamples, chunk):
        stop = min(start + chunk, num_resamples)
        indices = rng.integers(0, num_values, size=(stop - start, num_values))
        for row, values in enumerate(rows):
            means[row, start:stop] = values[indices].mean(axis=1)
    alpha = 1.0 - confidence
    intervals = []
    for row_means in means:
        low, high = np.quantile(row_means, [alpha / 2.0, 1.0 - alpha / 2.0])
        intervals.append((float(low), float(high)))
    return intervals


def _keyed_interval(bootstrap, values, confidence):
    """The interval of a `PoissonBootstrap` over ``values`` (NaN: left
    out), checked to pair one value with each of its images."""
    if not isinstance(bootstrap, PoissonBootstrap):
        raise TypeError(
            "`bootstrap` must be None or a PoissonBootstrap. "
            f"Received: bootstrap={bootstrap!r}"
        )
    if len(bootstrap) != len(values):
        raise ValueError(
            "`bootstrap` must have one image per value. Received: "
            f"{len(bootstrap)} images and {len(values)} values"
        )
    return bootstrap.interval(values, confidence=confidence)


def _interval(every, finite, bootstrap, **options):
    """The keyed interval of ``every`` value (NaN left out) with a
    `PoissonBootstrap` or from its `BootstrapSums` (summed elsewhere, e.g.
    by shards), else the percentile interval of the ``finite``."""
    if isinstance(bootstrap, BootstrapSums):
        if bootstrap.size != len(finite):
            raise ValueError(
                "`bootstrap` sums must cover the values used. Received: "
                f"sums of {bootstrap.size} values and {len(finite)} values"
            )
        return bootstrap.interval(confidence=options["confidence"])
    if bootstrap is not None:
        return _keyed_interval(bootstrap, every, options["confidence"])
    return _bootstrap_mean_interval(finite, **options)


def summarize(
    values, *, seed=0, confidence=0.95, num_resamples=10_000, bootstrap=None
):
    """Mean, median and bootstrap interval of per-image metric values.

    Args:
        values: `(N,)` values, e.g. one metric over the test images. NaN
            marks an undefined value (e.g. an empty mask): excluded, counted.
        seed: seed of the bootstrap's `np.random.default_rng`; the same
            seed gives the same interval.
        confidence: confidence level of the interval, in (0, 1).
        num_resamples: number of bootstrap resamples.
        bootstrap: ``None`` for the percentile bootstrap, or a
            `explain_attn.metrics.PoissonBootstrap` of the values' images
            (its seed and resamples are used; ``seed`` and
            ``num_resamples`` are ignored): an interval keyed by image; or
            the `explain_attn.metrics.BootstrapSums` of the values (e.g.
            added up from shards), which give that interval.

    Returns:
        A dict of plain Python numbers: `n` (int, values used), `nan_count`
        (int), `mean`, `median`, `ci_low`, `ci_high` (floats). With `n = 0`
        every float is NaN; with `n = 1` the mean and median are that value
        and the interval is NaN (one value says nothing about spread). With
        identical values the interval has zero width.

    Notes:
        Percentile bootstrap of the mean (Efron and Tibshirani, 1993): draw
        `num_resamples` samples of size `n` with replacement, take each
        sample's mean, and report the `(1 - confidence) / 2` and
        `(1 + confidence) / 2` quantiles of those means.
    """
    confidence = check_share("confidence", confidence)
    num_resamples = check_positive_int("num_resamples", num_resamples)
    values = _as_values(values, "values")
    missing = np.isnan(values)
    every = values
    values = values[~missing]
    result = {
        "n": int(values.size),
        "nan_count": int(missing.sum()),
        "mean": math.nan,
        "median": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    if values.size:
        result["mean"] = float(values.mean())
        result["median"] = float(np.median(values))
    if values.size >= 2:
        result["ci_low"], result["ci_high"] = _interval(
            every,
            values,
            bootstrap,
            confidence=confidence,
            num_resamples=num_resamples,
            seed=seed,
        )
    return result


def paired_difference(
    values_a,
    values_b,
    *,
    seed=0,
    confidence=0.95,
    num_resamples=10_000,
    bootstrap=None,
):
    """Mean paired difference `a - b`, its bootstrap interval and p-value.

    For "is attention's mass in mask higher than Grad-CAM's on the same
    images?".

    Args:
        values_a: `(N,)` per-image values of the first method.
        values_b: `(N,)` per-image values of the second, same images.
        seed: seed of the bootstrap's `np.random.default_rng`.
        confidence: confidence level of the interval, in (0, 1).
        num_resamples: number of bootstrap resamples.
        bootstrap: As in `summarize`: a `PoissonBootstrap` of the pairs'
            images for an interval keyed by image.

    Returns:
        A dict of plain Python numbers: `n` (int, complete pairs used),
        `nan_count` (int, pairs dropped because either value is NaN),
        `mean_difference`, `ci_low`, `ci_high` (percentile bootstrap of the
        mean of `a - b`) and `p_value` (two-sided Wilcoxon signed-rank).
        Degenerate cases: `n = 0`: all floats NaN; `n = 1`: the mean is that
        difference, interval and p-value NaN; all differences zero: mean 0,
        interval `[0, 0]` and `p_value = 1.0` (no evidence of a
        difference; the test itself is undefined there).

    Notes:
        `d_i = a_i - b_i`; `mean_difference = mean(d)`; interval as in
        `summarize`. `p_value` from `scipy.stats.wilcoxon(d)`: zero
        differences dropped (Wilcoxon's original rule), tied absolute
        differences given average ranks, an exact null distribution for
        small samples without ties and a normal approximation otherwise
        (SciPy's `method="auto"`).
    """
    confidence = check_share("confidence", confidence)
    num_resamples = check_positive_int("num_resamples", num_resamples)
    result, every, differences = _paired(values_a, values_b)
    if differences.size < 2:
        return result
    result["ci_low"], result["ci_high"] = _interval(
        every,
        differences,
        bootstrap,
        confidence=confidence,
        num_resamples=num_resamples,
        seed=seed,
    )
    return _with_p_value(result, differences)


def _paired(values_a, values_b):
    """``(result without interval and p-value, a - b, complete a - b)``."""
    values_a = _as_values(values_a, "values_a")
    values_b = _as_values(values_b, "values_b")
    if values_a.shape != values_b.shape:
        raise ValueError(
            "`values_a` and `values_b` must pair the same images. "
            f"Received: values_a.shape={values_a.shape}, "
            f"values_b.shape={values_b.shape}"
        )
    missing = np.isnan(values_a) | np.isnan(values_b)
    differences = values_a[~missing] - values_b[~missing]
    result = {
        "n": int(differences.size),
        "nan_count": int(missing.sum()),
        "mean_difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
    }
    if differences.size:
        result["mean_difference"] = float(differences.mean())
    return result, values_a - values_b, differences


def _with_p_value(result, differences):
    if not differences.any():
        result["p_value"] = 1.0
    else:
        result["p_value"] = float(stats.wilcoxon(differences).pvalue)
    return result


def paired_differences(pairs, *, seed=0, confidence=0.95, num_resamples=10_000):
    """`paired_difference` of each ``(values_a, values_b)`` of ``pairs``.

    The same dicts as one `paired_difference` call per pair (percentile
    bootstrap, the same ``seed`` for each), computed faster: pairs with the
    same number of complete values share the bootstrap's draws, which
    depend on the seed and that number only.

    Returns:
        A list of dicts, one per pair, in order.
    """
    confidence = check_share("confidence", confidence)
    num_resamples = check_positive_int("num_resamples", num_resamples)
    parts = [_paired(values_a, values_b) for values_a, values_b in pairs]
    by_size = {}
    for index, (_, _, differences) in enumerate(parts):
        if differences.size >= 2:
            by_size.setdefault(differences.size, []).append(index)
    for indices in by_size.values():
        intervals = _bootstrap_mean_intervals(
            [parts[i][2] for i in indices],
            confidence=confidence,
            num_resamples=num_resamples,
            seed=seed,
        )
        for index, (low, high) in zip(indices, intervals, strict=True):
            result, _, differences = parts[index]
            result["ci_low"], result["ci_high"] = low, high
            _with_p_value(result, differences)
    return [result for result, _, _ in parts]


def accuracy_interval(correct, *, confidence=0.95):
    """Accuracy with a Wilson score interval.

    Args:
        correct: `(N,)` bool (or 0/1): whether each prediction was right.
        confidence: confidence level of the interval, in (0, 1).

    Returns:
        A dict of plain Python numbers: `n` (int), `accuracy`, `ci_low`,
        `ci_high` (floats). With `n = 0` the floats are NaN. The interval
        stays inside [0, 1] and has non-zero width at 0 % and 100 %.

    Notes:
        Wilson (1927): with `p̂ = correct / n` and `z` the
        `(1 + confidence) / 2` normal quantile (1.96 for 95 %),
        `centre = (p̂ + z² / 2n) / (1 + z² / n)` and
        `half_width = z / (1 + z² / n) · sqrt(p̂ (1 - p̂) / n + z² / 4n²)`,
        from `scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`
        (whose bounds are exactly 0 when `k = 0` and 1 when `k = n`).
    """
    confidence = check_share("confidence", confidence)
    correct = np.asarray(correct)
    if correct.ndim != 1:
        raise ValueError(
            "`correct` must be one-dimensional (one value per prediction). "
            f"Received: correct.shape={correct.shape}"
        )
    if correct.dtype != bool:
        if (
            not (
                np.issubdtype(correct.dtype, np.integer)
                or np.issubdtype(correct.dtype, np.floating)
            )
            or not np.isin(correct, (0, 1)).all()
        ):
            raise ValueError(
                "`correct` must be boolean (or hold only 0 and 1). "
                f"Received: correct with dtype={correct.dtype}"
            )
    num = int(correct.size)
    result = {
        "n": num,
        "accuracy": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    if num == 0:
        return result
    num_correct = int(np.count_nonzero(correct))
    interval = stats.binomtest(num_correct, num).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    result["accuracy"] = num_correct / num
    result["ci_low"] = max(0.0, float(interval.low))
    result["ci_high"] = min(1.0, float(interval.high))
    return result
