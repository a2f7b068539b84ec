"""Metrics that turn attention maps into numbers.

Pure NumPy/SciPy functions over arrays (no TensorFlow), in the style of
`skimage.metrics`: maps first, options keyword-only, shapes validated first,
float64 accumulation, degenerate cases decided and documented.

Three families:

- **Per-image metrics** over maps `(N, H, W)` (non-negative) and, for the
  foreground metrics, masks `(N, H, W)` bool. Each returns `(N,)` float64.
  Concentration: `entropy`, `sparseness`. Foreground overlap: `mass_in_mask`,
  `pointing_game`, `rank_accuracy`, `roc_auc`, `top_fraction_iou`.
- **Agreement** between two explanations of the same images: `spearman`,
  `pearson`, `top_fraction_overlap`, each `(N,)` float64.
- **Statistics** that feed every number a report shows: `summarize`,
  `paired_difference`, `accuracy_interval`, each returning a dict of plain
  Python numbers (JSON-ready; NaN where undefined).

Conventions shared by every per-image metric:

- **Resolution.** Maps whose `(H, W)` differ from the masks' are resized to
  the mask size first, bilinearly with half-pixel centres and clamped edges,
  without anti-aliasing. This equals
  `skimage.transform.resize(map, shape, order=1, mode="edge",
  anti_aliasing=False)` and `tf.image.resize(method="bilinear")` (up to
  float32 rounding); it is a convex combination, so maps stay non-negative.
- **All-zero maps** carry no explanation: every metric returns NaN for them.
- **Empty masks** give NaN for every foreground metric (Quantus' pointing
  game turns them into `True`; we do not).
- **Ties** are broken in expectation. When the "top k" pixels are not unique
  because several pixels share the value at the cut, each tied pixel belongs
  to the top set with the same fractional weight
  `(k - #pixels above the cut) / #tied pixels`, so the weights still sum to
  `k`. Scores that count top pixels (pointing game, rank accuracy) are then
  exactly the expected score under a uniformly random order of tied pixels;
  IoUs use these weights as fuzzy memberships (`Σ min / Σ max`). Without
  ties this is the usual hard top-k set.
"""

import math

import numpy as np
from scipy import ndimage, stats

__all__ = [
    "AGREEMENT_METRICS",
    "CONCENTRATION_METRICS",
    "DEFAULT_FRACTION",
    "FOREGROUND_METRICS",
    "METRIC_DEFINITIONS",
    "PER_IMAGE_METRICS",
    "accuracy_interval",
    "entropy",
    "mass_in_mask",
    "paired_difference",
    "pearson",
    "pointing_game",
    "rank_accuracy",
    "roc_auc",
    "sparseness",
    "spearman",
    "summarize",
    "top_fraction_iou",
    "top_fraction_overlap",
]

DEFAULT_FRACTION = 0.2
"""Default share of pixels in the "top" set of the top-fraction metrics."""


# --------------------------------------------------------------------------
# Validation and shared helpers
# --------------------------------------------------------------------------


def _check_real(array, name):
    """Raises a `TypeError` unless ``array`` holds real numbers (or bools)."""
    if not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or array.dtype == bool
    ):
        raise TypeError(
            f"`{name}` must hold real numbers. "
            f"Received: {name}.dtype={array.dtype}"
        )


def _as_maps(maps, name="maps", *, non_negative=True):
    """Validates `(N, H, W)` real maps.

    Returns the maps as float32 (float16/float32 input) or float64 (anything
    else), without copying when possible; callers never write into them and
    accumulate in float64.
    """
    array = np.asarray(maps)
    if array.ndim != 3:
        raise ValueError(
            f"`{name}` must have shape (N, H, W). "
            f"Received: {name}.shape={array.shape}"
        )
    _check_real(array, name)
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(
            f"`{name}` must have at least one pixel per image. "
            f"Received: {name}.shape={array.shape}"
        )
    if array.dtype in (np.float16, np.float32):
        array = array.astype(np.float32, copy=False)
    else:
        array = array.astype(np.float64, copy=False)
    if not array.size:
        return array
    # min and max propagate NaN and reveal infinities in two cheap passes.
    minimum, maximum = array.min(), array.max()
    if not (np.isfinite(minimum) and np.isfinite(maximum)):
        num_nan = int(np.isnan(array).sum())
        num_inf = int(np.isinf(array).sum())
        raise ValueError(
            f"`{name}` must be finite; replace NaN/inf before computing "
            f"metrics. Received: {name} with {num_nan} NaN and {num_inf} "
            "infinite values"
        )
    if non_negative and minimum < 0:
        raise ValueError(
            f"`{name}` must be non-negative (apply ReLU or take the absolute "
            f"value first). Received: min({name})={float(minimum)!r}"
        )
    return array


def _as_masks(masks, num_images):
    """Validates `(N, H, W)` boolean (or 0/1) masks; returns a bool array."""
    array = np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(
            "`masks` must have shape (N, H, W). "
            f"Received: masks.shape={array.shape}"
        )
    if array.dtype != bool:
        if not (
            np.issubdtype(array.dtype, np.integer)
            or np.issubdtype(array.dtype, np.floating)
        ):
            raise TypeError(
                f"`masks` must be boolean. Received: masks.dtype={array.dtype}"
            )
        if not np.isin(array, (0, 1)).all():
            values = np.unique(array[~np.isin(array, (0, 1))])[:5]
            raise ValueError(
                "`masks` must be boolean (or hold only 0 and 1). "
                f"Received: masks with values {values.tolist()}"
            )
        array = array.astype(bool)
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(
            "`masks` must have at least one pixel per image. "
            f"Received: masks.shape={array.shape}"
        )
    if array.shape[0] != num_images:
        raise ValueError(
            "`maps` and `masks` must hold the same number of images. "
            f"Received: len(maps)={num_images}, len(masks)={array.shape[0]}"
        )
    return array


def _check_fraction(fraction):
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float | np.integer | np.floating)
        or not 0.0 < float(fraction) <= 1.0
    ):
        raise ValueError(
            f"`fraction` must be a number in (0, 1]. Received: "
            f"fraction={fraction!r}"
        )
    return float(fraction)


def _check_confidence(confidence):
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float | np.integer | np.floating)
        or not 0.0 < float(confidence) < 1.0
    ):
        raise ValueError(
            "`confidence` must be a number in (0, 1), e.g. 0.95. "
            f"Received: confidence={confidence!r}"
        )
    return float(confidence)


def _check_num_resamples(num_resamples):
    if (
        isinstance(num_resamples, bool)
        or not isinstance(num_resamples, int | np.integer)
        or num_resamples < 1
    ):
        raise ValueError(
            "`num_resamples` must be a positive integer. "
            f"Received: num_resamples={num_resamples!r}"
        )
    return int(num_resamples)


def _bilinear_matrix(size_out, size_in):
    """`(size_out, size_in)` matrix of 1-D bilinear interpolation weights.

    Half-pixel centres: output pixel `i` samples input coordinate
    `(i + 0.5) * size_in / size_out - 0.5`, clamped to `[0, size_in - 1]`.
    """
    coordinates = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    coordinates = np.clip(coordinates, 0.0, size_in - 1)
    lower = np.floor(coordinates).astype(np.int64)
    upper = np.minimum(lower + 1, size_in - 1)
    weight_upper = coordinates - lower
    matrix = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, lower), 1.0 - weight_upper)
    np.add.at(matrix, (rows, upper), weight_upper)
    return matrix


def _resize(maps, shape):
    """Bilinear resize of `(N, h, w)` float64 maps to `(N, *shape)`."""
    if maps.shape[1:] == tuple(shape):
        return maps
    rows = _bilinear_matrix(shape[0], maps.shape[1])
    columns = _bilinear_matrix(shape[1], maps.shape[2])
    return rows @ maps @ columns.T


def _safe_divide(numerator, denominator):
    """`numerator / denominator`, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def _flat_maps(maps):
    maps = _as_maps(maps)
    return maps.reshape(len(maps), maps.shape[1] * maps.shape[2])


def _flat_maps_and_masks(maps, masks):
    """Validated `(N, P)` maps at the masks' size and `(N, P)` bool masks."""
    maps = _as_maps(maps)
    masks = _as_masks(masks, len(maps))
    maps = _resize(maps, masks.shape[1:])
    flat_shape = (len(maps), maps.shape[1] * maps.shape[2])
    return maps.reshape(flat_shape), masks.reshape(flat_shape)


def _row_dot(flat, weights):
    """Row-wise `Σ_j flat[i, j] * weights[i, j]`, accumulated in float64."""
    return np.einsum(
        "ij,ij->i", flat, weights, dtype=np.float64, casting="unsafe"
    )


def _top_k(flat, k, sorted_ascending=None):
    """Top-`k` membership of each pixel, ties at the cut sharing the slots.

    Args:
        flat: `(N, P)` values.
        k: `(N,)` integers in `[1, P]`.
        sorted_ascending: optional `np.sort(flat, axis=1)` to find the cut
            when `k` varies between rows.

    Returns:
        `(above, tied, share)`: `(N, P)` bool masks of the pixels above and
        equal to the `k`-th largest value, and the `(N,)` float64 weight
        `(k - #above) / #tied` of each tied pixel. The membership
        `w = above + share * tied` sums to `k` per row.
    """
    num_pixels = flat.shape[1]
    k = np.asarray(k)
    if sorted_ascending is None:
        # One k for every row: a partition finds the cut in linear time.
        position = num_pixels - int(k.flat[0]) if k.size else 0
        cut = np.partition(flat, position, axis=1)[:, position]
    else:
        cut = np.take_along_axis(
            sorted_ascending, (num_pixels - k)[:, None], axis=1
        )[:, 0]
    above = flat > cut[:, None]
    tied = flat == cut[:, None]
    share = (k - np.count_nonzero(above, axis=1)) / np.count_nonzero(
        tied, axis=1
    )
    return above, tied, share


def _top_k_in_mask(above, tied, share, masks):
    """`Σ_{i in mask} w_i` for the top-`k` membership `w` of `_top_k`."""
    return np.count_nonzero(above & masks, axis=1) + share * np.count_nonzero(
        tied & masks, axis=1
    )


def _sorted_keys(flat, masks):
    """Row-wise sorted keys that carry each pixel's value and mask bit.

    For non-negative IEEE floats the bit pattern, read as an unsigned
    integer, orders like the value. Shifting it left by one bit and storing
    the mask bit in the freed lowest bit gives keys that one fast integer
    sort orders by value (and, among equal values, outside before inside).
    """
    unsigned = np.uint32 if flat.dtype == np.float32 else np.uint64
    # The shift also drops the sign bit, so -0.0 and 0.0 give the same key.
    keys = np.left_shift(np.ascontiguousarray(flat).view(unsigned), 1)
    np.bitwise_or(keys, masks, out=keys, casting="unsafe")
    keys.sort(axis=1)
    return keys


def _tie_groups(sorted_values):
    """Groups of equal values in row-wise sorted `(N, P)` values.

    Returns:
        `(starts, ends)`: flat indices into `sorted_values.ravel()` of the
        first and last element of each group, in order. A group never spans
        two rows.
    """
    is_start = np.ones(sorted_values.shape, dtype=bool)
    is_start[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    starts = np.flatnonzero(is_start)
    ends = np.append(starts[1:], sorted_values.size) - 1
    return starts, ends


def _has_ties(sorted_values):
    """`(N,)` bool: whether each row-wise sorted row repeats a value."""
    return (sorted_values[:, 1:] == sorted_values[:, :-1]).any(axis=1)


def _average_ranks(flat):
    """Row-wise ranks `1..P` of `(N, P)` values, ties given their mean rank.

    The vectorised equivalent of `scipy.stats.rankdata(flat, axis=1)`.
    """
    num_images, num_pixels = flat.shape
    # Flat indices: one gather and one scatter instead of the slower
    # take_along_axis / put_along_axis.
    order = np.argsort(flat, axis=1)
    order += (np.arange(num_images) * num_pixels)[:, None]
    order = order.reshape(-1)
    sorted_values = flat.reshape(-1)[order].reshape(flat.shape)
    sorted_ranks = np.tile(np.arange(1.0, num_pixels + 1.0), (num_images, 1))
    rows = np.flatnonzero(_has_ties(sorted_values))
    if rows.size:
        # Only rows with ties need the (slower) mean rank of each group.
        starts, ends = _tie_groups(sorted_values[rows])
        group_ranks = (starts + ends) / 2.0 + 1.0
        group_ranks -= (starts // num_pixels) * num_pixels
        group_sizes = ends - starts + 1
        sorted_ranks[rows] = np.repeat(group_ranks, group_sizes).reshape(
            rows.size, num_pixels
        )
    ranks = np.empty(flat.size)
    ranks[order] = sorted_ranks.reshape(-1)
    return ranks.reshape(flat.shape)


def _num_top(fraction, num_pixels):
    # Rounded first so that e.g. 0.2 * 25 counts as exactly 5.
    return max(1, math.ceil(round(fraction * num_pixels, 9)))


# --------------------------------------------------------------------------
# Concentration
# --------------------------------------------------------------------------


def entropy(maps, *, normalize=True):
    """Spatial Shannon entropy of each map, read as a distribution of mass.

    Low entropy: the mass sits on few pixels; high: it is spread out. This is
    not `skimage.measure.shannon_entropy`, which is the entropy of the
    histogram of values and scores a peaked and a diffuse map alike.

    Args:
        maps: `(N, H, W)` non-negative maps.
        normalize: if `True` (default), divide by `ln(H·W)` so that 0 means
            all mass on one pixel and 1 a uniform map. If `False`, return
            nats, as Quantus' `Complexity` (Bhatt et al., 2020).

    Returns:
        `(N,)` float64. NaN for an all-zero map, and, with `normalize=True`,
        for a 1×1 map (`ln 1 = 0`; one pixel has no spatial spread).

    Notes:
        With `p_i = m_i / Σ_j m_j` over the `H·W` pixels,
        `entropy = -Σ_i p_i ln p_i` (with `0 ln 0 = 0`), divided by `ln(H·W)`
        when `normalize=True`. A constant map gives 1 (`ln(H·W)` nats).

        Differences from Quantus 0.6.0 `Complexity`: Quantus adds `1e-12`
        inside the logarithm (a difference below 1e-9 nats); it refuses a
        batch of all-zero maps (`AssertionError`) and gives NaN with a
        `RuntimeWarning` for an all-zero map in a mixed batch; it takes `|m|`
        first, whereas negative maps are rejected here. Computed as
        `ln S - Σ_i m_i ln m_i / S` with `S = Σ_i m_i`, which is the same
        quantity without an `(N, H, W)` division.

    Example:

    >>> maps = np.zeros((1, 2, 2)); maps[0, 0, 0] = 1.0
    >>> entropy(maps)
    array([0.])
    >>> entropy(np.ones((1, 2, 2)))
    array([1.])
    """
    flat = _flat_maps(maps)
    if flat.size and float(flat.max()) > 1e300:
        # Entropy is scale-free; keep m ln m below the float64 limit.
        flat = flat / flat.max()
    # -Σ p ln p with p = m / S equals ln S - Σ m ln m / S: no (N, P) divide.
    totals = flat.sum(axis=1, dtype=np.float64)
    logs = np.zeros(flat.shape)
    np.log(flat, out=logs, where=flat > 0, dtype=np.float64)
    result = np.log(totals, out=np.full(totals.shape, np.nan), where=totals > 0)
    result -= _safe_divide(_row_dot(flat, logs), totals)
    # Rounding can leave -1e-16 where all mass is on one pixel.
    result = np.maximum(result, 0.0)
    if normalize:
        result = _safe_divide(result, np.log(flat.shape[1]))
    return result


def sparseness(maps):
    """Gini index of each map's values: 0 for a flat map, near 1 for a peak.

    Quantus' `Sparseness` (Chalasani et al., 2020, "Concise explanations of
    neural networks using adversarial training"), the Gini index of Hurley
    and Rickard (2009).

    Args:
        maps: `(N, H, W)` non-negative maps.

    Returns:
        `(N,)` float64 in `[0, 1 - 1/(H·W)]`: 0 for a constant map,
        `1 - 1/(H·W)` when one pixel holds all the mass. NaN for an all-zero
        map.

    Notes:
        With the `n = H·W` values sorted ascending, `m_(1) <= ... <= m_(n)`,
        `gini = Σ_i (2i - n - 1) m_(i) / (n Σ_i m_(i))`, equivalently
        `1 - 2 Σ_i (m_(i) / Σ m) (n - i + 1/2) / n`.

        Differences from Quantus 0.6.0 `Sparseness`: Quantus divides each
        batch by its maximum and then adds `1e-7` to every value, i.e. it
        scores `m / max(m) + 1e-7`; that lowers the score by the relative
        amount `n·1e-7 / Σ (m / max m)` (about 2e-7 for a uniform random
        32×32 map, more for peaked maps) and, within a batch, scores an
        all-zero map 0 instead of NaN (a batch of all-zero maps is refused).

    Example:

    >>> maps = np.zeros((1, 2, 2)); maps[0, 0, 0] = 1.0
    >>> sparseness(maps)
    array([0.75])
    """
    flat = _flat_maps(maps)
    num_pixels = flat.shape[1]
    ordered = np.sort(flat, axis=1)
    coefficients = 2.0 * np.arange(1, num_pixels + 1) - num_pixels - 1.0
    weighted = np.einsum(
        "ij,j->i", ordered, coefficients, dtype=np.float64, casting="unsafe"
    )
    return _safe_divide(
        weighted, num_pixels * ordered.sum(axis=1, dtype=np.float64)
    )


# --------------------------------------------------------------------------
# Foreground overlap
# --------------------------------------------------------------------------


def mass_in_mask(maps, masks):
    """Share of each map's mass that lies inside the mask.

    The energy-based pointing game (Wang et al., 2020, Score-CAM) and
    Quantus' `RelevanceMassAccuracy` (Arras et al., 2022) on non-negative
    maps.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.

    Returns:
        `(N,)` float64 in [0, 1]. NaN for an empty mask or an all-zero map.
        1 for a mask covering the image; `|M| / (H·W)` for a constant map.

    Notes:
        `mass_in_mask = Σ_{i in M} m_i / Σ_i m_i`.

        Same as Quantus 0.6.0 `RelevanceMassAccuracy`, which also returns
        NaN for an empty mask; Quantus accepts signed maps (a signed ratio),
        which are rejected here.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    result = _safe_divide(
        _row_dot(flat, flat_masks), flat.sum(axis=1, dtype=np.float64)
    )
    result[~flat_masks.any(axis=1)] = np.nan
    return result


def _disk(radius):
    extent = int(math.floor(radius))
    offsets = np.arange(-extent, extent + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def pointing_game(maps, masks, *, tolerance=0):
    """Whether each map's maximum falls on the mask (or within `tolerance`).

    The pointing game of Zhang et al. (2018, "Top-down neural attention by
    excitation backprop"); Quantus' `PointingGame`. TorchRay uses a
    tolerance of 15 pixels at image resolution.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.
        tolerance: non-negative radius in mask pixels. A maximum counts as a
            hit if it lies within this Euclidean distance of a mask pixel.
            0 (default): it must lie on the mask.

    Returns:
        `(N,)` float64: 1 for a hit, 0 for a miss; with ties, the share of
        the maximal pixels that are hits. NaN for an empty mask or an
        all-zero map.

    Notes:
        With `D` the mask dilated by a disk of radius `tolerance` and
        `A = {i : m_i = max_j m_j}` the maximal pixels,
        `pointing_game = |A ∩ D| / |A|`: 1 or 0 when the maximum is unique,
        and the expected hit under a uniformly random choice among tied
        maxima otherwise (so a constant map scores `|D| / (H·W)`, chance).

        Differences from Quantus 0.6.0 `PointingGame`: Quantus counts a hit
        when *any* maximal pixel lies in the mask (ties favour a hit, so a
        constant map always hits), has no tolerance, and returns `True` for
        an empty mask (its NaN is cast to bool); we return NaN.
    """
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float | np.integer | np.floating)
        or not 0.0 <= float(tolerance) < math.inf
    ):
        raise ValueError(
            "`tolerance` must be a finite number >= 0 (pixels). "
            f"Received: tolerance={tolerance!r}"
        )
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    targets = flat_masks
    if tolerance >= 1:
        masks_array = np.asarray(masks).astype(bool)
        structure = _disk(float(tolerance))[None]
        targets = ndimage.binary_dilation(masks_array, structure=structure)
        targets = targets.reshape(flat.shape)
    maxima = flat == flat.max(axis=1, keepdims=True)
    result = _safe_divide(
        np.count_nonzero(maxima & targets, axis=1),
        np.count_nonzero(maxima, axis=1),
    )
    result[~flat_masks.any(axis=1) | ~flat.any(axis=1)] = np.nan
    return result


def rank_accuracy(maps, masks):
    """Share of each map's top-|mask| pixels that lie inside the mask.

    Quantus' `RelevanceRankAccuracy` (Arras et al., 2022): with `K = |M|`
    mask pixels, the fraction of the `K` highest-valued pixels in the mask.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.

    Returns:
        `(N,)` float64 in [0, 1]. NaN for an empty mask or an all-zero map.
        1 for a mask covering the image; `|M| / (H·W)` for a constant map.

    Notes:
        `rank_accuracy = Σ_{i in M} w_i / K`, where `w` is the top-`K`
        membership: 1 for pixels above the `K`-th largest value `t`,
        `(K - #{m > t}) / #{m = t}` for pixels equal to `t`, 0 below. Without
        ties this is `|top_K ∩ M| / K`; with ties, the expectation under a
        random order of the tied pixels.

        Differences from Quantus 0.6.0 `RelevanceRankAccuracy`: Quantus
        breaks ties by the order of `np.argsort(-m)` (implementation
        defined); the results agree whenever the `K`-th value is not tied.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    mask_sizes = np.count_nonzero(flat_masks, axis=1)
    above, tied, share = _top_k(
        flat, np.maximum(mask_sizes, 1), np.sort(flat, axis=1)
    )
    result = _safe_divide(
        _top_k_in_mask(above, tied, share, flat_masks), mask_sizes
    )
    result[~flat.any(axis=1)] = np.nan
    return result


def roc_auc(maps, masks):
    """Area under the ROC curve of each map used to classify mask pixels.

    Quantus' `AUC` (Fawcett, 2006): the probability that a random mask pixel
    scores higher than a random pixel outside the mask, ties counting half.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.

    Returns:
        `(N,)` float64 in [0, 1]; 0.5 for a constant map. NaN for an empty
        mask, a mask covering the image (no negatives), or an all-zero map.

    Notes:
        The Mann-Whitney form: with average ranks `r_i` (1 = lowest) of the
        `n = H·W` values, `P = |M|` positives and `Q = n - P` negatives,
        `auc = (Σ_{i in M} r_i - P (P + 1) / 2) / (P Q)`; this is the
        trapezoidal area under the ROC curve, ties included.

        Same as Quantus 0.6.0 `AUC` (`sklearn.metrics.roc_curve` then
        `auc`), which also returns NaN for an empty mask; for a full mask
        scikit-learn warns and returns NaN.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    num_pixels = flat.shape[1]
    num_positive = np.count_nonzero(flat_masks, axis=1).astype(np.float64)
    num_negative = num_pixels - num_positive
    # Sorted by value; among equal values, negatives before positives.
    keys = _sorted_keys(flat, flat_masks)
    sorted_masks = keys & keys.dtype.type(1)
    # Pairs (negative, positive) with the negative sorted first: those with
    # a lower value plus all tied ones.
    pairs = np.einsum(
        "ij,j->i",
        sorted_masks,
        np.arange(num_pixels, dtype=np.float64),
        dtype=np.float64,
        casting="unsafe",
    )
    pairs -= num_positive * (num_positive - 1.0) / 2.0
    sorted_values = keys >> keys.dtype.type(1)
    rows = np.flatnonzero(_has_ties(sorted_values))
    if rows.size:
        # Tied pairs count one half: remove half of them per tie group.
        starts, ends = _tie_groups(sorted_values[rows])
        group_positives = np.add.reduceat(
            sorted_masks[rows].ravel().astype(np.int64), starts
        )
        group_negatives = ends - starts + 1 - group_positives
        pairs[rows] -= 0.5 * np.bincount(
            starts // num_pixels,
            weights=group_positives * group_negatives,
            minlength=rows.size,
        )
    result = _safe_divide(pairs, num_positive * num_negative)
    result[~flat.any(axis=1)] = np.nan
    return result


def top_fraction_iou(maps, masks, *, fraction=DEFAULT_FRACTION):
    """IoU between each map's top `fraction` of pixels and the mask.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.
        fraction: share of pixels in the top set, in (0, 1]; default 0.2.
            The top set holds `k = ceil(fraction · H · W)` pixels (at least
            one).

    Returns:
        `(N,)` float64 in [0, 1]. NaN for an empty mask or an all-zero map.
        `k / (H·W)` for a mask covering the image.

    Notes:
        With `w` the top-`k` membership (1 above the `k`-th largest value,
        a shared fraction for pixels tied with it, 0 below; `Σ w = k`), the
        fuzzy Jaccard index `iou = Σ_i min(w_i, M_i) / Σ_i max(w_i, M_i)`
        `= I / (k + |M| - I)` with `I = Σ_{i in M} w_i`. Without ties it is
        the IoU of the top-`k` set and the mask. A perfect score needs
        `|M| = k`.

        Quantus has no direct counterpart: its `TopKIntersection` is the
        precision `|top_k ∩ M| / k` for a fixed pixel count `k` (ties
        broken by `argsort` order), not an IoU.
    """
    fraction = _check_fraction(fraction)
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    num_top = _num_top(fraction, flat.shape[1])
    above, tied, share = _top_k(flat, np.full(len(flat), num_top))
    intersection = _top_k_in_mask(above, tied, share, flat_masks)
    union = num_top + np.count_nonzero(flat_masks, axis=1) - intersection
    result = _safe_divide(intersection, union)
    result[~flat_masks.any(axis=1) | ~flat.any(axis=1)] = np.nan
    return result


# --------------------------------------------------------------------------
# Agreement between two explanations
# --------------------------------------------------------------------------


def _flat_pair(maps_a, maps_b):
    maps_a = _as_maps(maps_a, "maps_a", non_negative=False)
    maps_b = _as_maps(maps_b, "maps_b", non_negative=False)
    if len(maps_a) != len(maps_b):
        raise ValueError(
            "`maps_a` and `maps_b` must hold the same number of images. "
            f"Received: maps_a.shape={maps_a.shape}, "
            f"maps_b.shape={maps_b.shape}"
        )
    shape = (
        max(maps_a.shape[1], maps_b.shape[1]),
        max(maps_a.shape[2], maps_b.shape[2]),
    )
    flat_shape = (len(maps_a), shape[0] * shape[1])
    flat_a = _resize(maps_a, shape).reshape(flat_shape)
    flat_b = _resize(maps_b, shape).reshape(flat_shape)
    constant = (flat_a.max(axis=1) == flat_a.min(axis=1)) | (
        flat_b.max(axis=1) == flat_b.min(axis=1)
    )
    return flat_a, flat_b, constant


def _pearson_rows(flat_a, flat_b, constant):
    flat_a = flat_a.astype(np.float64, copy=False)
    flat_b = flat_b.astype(np.float64, copy=False)
    centred_a = flat_a - flat_a.mean(axis=1, keepdims=True)
    centred_b = flat_b - flat_b.mean(axis=1, keepdims=True)
    numerator = _row_dot(centred_a, centred_b)
    denominator = np.sqrt(
        _row_dot(centred_a, centred_a) * _row_dot(centred_b, centred_b)
    )
    result = np.clip(_safe_divide(numerator, denominator), -1.0, 1.0)
    result[constant] = np.nan
    return result


def pearson(maps_a, maps_b):
    """Pearson correlation between two maps of each image, over pixels.

    Args:
        maps_a: `(N, H, W)` finite maps (e.g. attention).
        maps_b: `(N, H', W')` finite maps of the same images (e.g. Grad-CAM).
            If the sizes differ, both are resized (bilinear) to
            `(max(H, H'), max(W, W'))` first.

    Returns:
        `(N,)` float64 in [-1, 1]. NaN when either map is constant (zero
        variance), an all-zero map included.

    Notes:
        `r = Σ (a_i - ā)(b_i - b̄) / sqrt(Σ (a_i - ā)² Σ (b_i - b̄)²)`,
        accumulated in float64; `scipy.stats.pearsonr` per image.
    """
    flat_a, flat_b, constant = _flat_pair(maps_a, maps_b)
    return _pearson_rows(flat_a, flat_b, constant)


def spearman(maps_a, maps_b):
    """Spearman rank correlation between two maps of each image.

    Args:
        maps_a: `(N, H, W)` finite maps (e.g. attention).
        maps_b: `(N, H', W')` finite maps of the same images (e.g. Grad-CAM).
            If the sizes differ, both are resized (bilinear) to
            `(max(H, H'), max(W, W'))` first.

    Returns:
        `(N,)` float64 in [-1, 1]. NaN when either map is constant.

    Notes:
        The Pearson correlation of the pixels' average ranks (ties get the
        mean of their ranks): `scipy.stats.spearmanr` per image.
    """
    flat_a, flat_b, constant = _flat_pair(maps_a, maps_b)
    return _pearson_rows(
        _average_ranks(flat_a), _average_ranks(flat_b), constant
    )


def top_fraction_overlap(maps_a, maps_b, *, fraction=DEFAULT_FRACTION):
    """IoU between the top `fraction` of pixels of two maps of each image.

    Args:
        maps_a: `(N, H, W)` finite maps (e.g. attention).
        maps_b: `(N, H', W')` finite maps of the same images (e.g. Grad-CAM).
            If the sizes differ, both are resized (bilinear) to
            `(max(H, H'), max(W, W'))` first.
        fraction: share of pixels in each top set, in (0, 1]; default 0.2.
            Each top set holds `k = ceil(fraction · H · W)` pixels.

    Returns:
        `(N,)` float64 in [0, 1]: 1 when both maps select the same pixels.
        NaN when either map is constant (it ranks no pixel above another).

    Notes:
        With top-`k` memberships `u` and `v` (1 above the `k`-th largest
        value, a shared fraction for pixels tied with it, 0 below),
        `overlap = Σ_i min(u_i, v_i) / Σ_i max(u_i, v_i)`; without ties the
        IoU `|A ∩ B| / |A ∪ B|` of the two top-`k` sets. Chance level for
        independent maps is about `fraction / (2 - fraction)`.
    """
    fraction = _check_fraction(fraction)
    flat_a, flat_b, constant = _flat_pair(maps_a, maps_b)
    num_top = _num_top(fraction, flat_a.shape[1])
    above_a, tied_a, share_a = _top_k(flat_a, np.full(len(flat_a), num_top))
    above_b, tied_b, share_b = _top_k(flat_b, np.full(len(flat_b), num_top))
    # Σ min(u, v) over the four combinations of "above" and "tied".
    intersection = (
        np.count_nonzero(above_a & above_b, axis=1)
        + share_a * np.count_nonzero(tied_a & above_b, axis=1)
        + share_b * np.count_nonzero(above_a & tied_b, axis=1)
        + np.minimum(share_a, share_b)
        * np.count_nonzero(tied_a & tied_b, axis=1)
    )
    # Σ max(u, v) = Σ (u + v) - Σ min(u, v) = 2k - Σ min(u, v).
    result = _safe_divide(intersection, 2.0 * num_top - intersection)
    result[constant] = np.nan
    return result


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def _as_values(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be one-dimensional (one value per image). "
            f"Received: {name}.shape={array.shape}"
        )
    _check_real(array, name)
    array = array.astype(np.float64)
    if np.isinf(array).any():
        raise ValueError(
            f"`{name}` must not contain infinite values (NaN marks a "
            f"missing value). Received: {name} with "
            f"{int(np.isinf(array).sum())} infinite values"
        )
    return array


def _bootstrap_mean_interval(values, *, confidence, num_resamples, seed):
    """Percentile-bootstrap interval of the mean of 1-D finite `values`."""
    rng = np.random.default_rng(seed)
    num_values = len(values)
    means = np.empty(num_resamples)
    # Chunks keep the (resamples, n) index array to about 4 M entries.
    chunk = max(1, 4_000_000 // num_values)
    for start in range(0, num_resamples, chunk):
        stop = min(start + chunk, num_resamples)
        indices = rng.integers(0, num_values, size=(stop - start, num_values))
        means[start:stop] = values[indices].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def summarize(values, *, seed=0, confidence=0.95, num_resamples=10_000):
    """Mean, median and bootstrap interval of per-image metric values.

    Args:
        values: `(N,)` values, e.g. one metric over the test images. NaN
            marks an undefined value (e.g. an empty mask): excluded, counted.
        seed: seed of the bootstrap's `np.random.default_rng`; the same
            seed gives the same interval.
        confidence: confidence level of the interval, in (0, 1).
        num_resamples: number of bootstrap resamples.

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
    confidence = _check_confidence(confidence)
    num_resamples = _check_num_resamples(num_resamples)
    values = _as_values(values, "values")
    missing = np.isnan(values)
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
        result["ci_low"], result["ci_high"] = _bootstrap_mean_interval(
            values,
            confidence=confidence,
            num_resamples=num_resamples,
            seed=seed,
        )
    return result


def paired_difference(
    values_a, values_b, *, seed=0, confidence=0.95, num_resamples=10_000
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
    confidence = _check_confidence(confidence)
    num_resamples = _check_num_resamples(num_resamples)
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
    if differences.size < 2:
        return result
    result["ci_low"], result["ci_high"] = _bootstrap_mean_interval(
        differences,
        confidence=confidence,
        num_resamples=num_resamples,
        seed=seed,
    )
    if not differences.any():
        result["p_value"] = 1.0
    else:
        result["p_value"] = float(stats.wilcoxon(differences).pvalue)
    return result


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
        `half_width = z / (1 + z² / n) · sqrt(p̂ (1 - p̂) / n + z² / 4n²)`.
    """
    confidence = _check_confidence(confidence)
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
    accuracy = float(np.count_nonzero(correct)) / num
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    denominator = 1.0 + z * z / num
    centre = (accuracy + z * z / (2.0 * num)) / denominator
    half_width = (z / denominator) * math.sqrt(
        accuracy * (1.0 - accuracy) / num + z * z / (4.0 * num * num)
    )
    result["accuracy"] = accuracy
    result["ci_low"] = max(0.0, centre - half_width)
    result["ci_high"] = min(1.0, centre + half_width)
    return result


# --------------------------------------------------------------------------
# Registries for reports
# --------------------------------------------------------------------------

CONCENTRATION_METRICS = {
    "entropy": entropy,
    "sparseness": sparseness,
}
"""Metrics that need no mask, by name; each called as `function(maps)`."""

FOREGROUND_METRICS = {
    "mass_in_mask": mass_in_mask,
    "pointing_game": pointing_game,
    "rank_accuracy": rank_accuracy,
    "roc_auc": roc_auc,
    "top_fraction_iou": top_fraction_iou,
}
"""Metrics against a foreground mask, by name; `function(maps, masks)`."""

PER_IMAGE_METRICS = {**CONCENTRATION_METRICS, **FOREGROUND_METRICS}
"""All per-image metrics by name (default options), each returning `(N,)`.

The `CONCENTRATION_METRICS` take `maps` only; the `FOREGROUND_METRICS` take
`(maps, masks)` and are left out when a dataset has no masks.
"""

AGREEMENT_METRICS = {
    "spearman": spearman,
    "pearson": pearson,
    "top_fraction_overlap": top_fraction_overlap,
}
"""Agreement metrics by name, each called as `function(maps_a, maps_b)`."""

METRIC_DEFINITIONS = {
    "entropy": (
        "How spread out the map is: the Shannon entropy of the map read as a "
        "distribution of mass over pixels, scaled so that 0 means all mass "
        "on one pixel and 1 a perfectly uniform map (lower is more focused)."
    ),
    "sparseness": (
        "How unequal the map's values are: their Gini index, 0 for a flat "
        "map and close to 1 when a few pixels hold all the mass (higher is "
        "more focused)."
    ),
    "mass_in_mask": (
        "The share of the map's total mass that falls inside the object "
        "mask (higher is better; a map that ignores the object scores about "
        "the mask's share of the image)."
    ),
    "pointing_game": (
        "Whether the map's single highest pixel lies on the object mask: 1 "
        "for a hit, 0 for a miss, averaged into a hit rate (ties among "
        "maxima count as a random pick)."
    ),
    "rank_accuracy": (
        "With K the number of mask pixels, the share of the map's K highest "
        "pixels that lie on the object mask (higher is better)."
    ),
    "roc_auc": (
        "The map used as a pixel classifier of the object mask: the "
        "probability that a random object pixel scores higher than a random "
        "background pixel (0.5 is chance, 1 is perfect)."
    ),
    "top_fraction_iou": (
        f"The overlap (intersection over union) between the map's top "
        f"{DEFAULT_FRACTION:.0%} of pixels and the object mask (higher is "
        "better)."
    ),
    "spearman": (
        "Rank correlation between two maps of the same image over pixels: 1 "
        "when they order the pixels identically, 0 when unrelated."
    ),
    "pearson": (
        "Linear correlation between two maps of the same image over pixels: "
        "1 when one is a scaled copy of the other, 0 when unrelated."
    ),
    "top_fraction_overlap": (
        f"The overlap (intersection over union) between the top "
        f"{DEFAULT_FRACTION:.0%} of pixels of two maps of the same image: 1 "
        "when they highlight the same pixels."
    ),
}
"""One- or two-sentence plain-language definition of each metric."""
