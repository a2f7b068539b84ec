"""Foreground metrics: how each map overlaps a ground-truth mask.

`mass_in_mask`, `pointing_game`, `rank_accuracy`, `roc_auc` and
`top_fraction_iou`, each over `(N, H, W)` non-negative maps and `(N, H, W)`
bool masks, returning `(N,)` float64. Maps are resized to the masks' size;
empty masks give NaN.

Near-ties. The rank metrics (`pointing_game`, `rank_accuracy`, `roc_auc`,
`top_fraction_iou`) use the exact order of the map values they receive:
equal values are ties (handled as each metric's notes say), and values
that differ in the last bit are not. On one machine the same maps give the
same numbers, bit for bit. Maps computed by TensorFlow on another CPU can
differ in their last bits (other float kernels), which can swap two
near-equal pixels; one swap of neighbouring ranks moves a metric by at most
its *swap step*, stated in its notes (`P = |M|` mask pixels, `Q` the
others). Comparisons across machines allow a few such steps
(``tests/test_golden.py``); nothing is rounded here, so a map's genuine
small differences are never merged.
"""

import math

import numpy as np
from scipy import ndimage

from explain_attn.metrics.arrays import (
    DEFAULT_FRACTION,
    as_maps,
    as_masks,
    check_fraction,
    has_ties,
    num_top_pixels,
    resize,
    row_dot,
    row_searchsorted,
    safe_divide,
    top_k,
)


def _flat_maps_and_masks(maps, masks):
    """Validated `(N, P)` maps at the masks' size and `(N, P)` bool masks."""
    maps = as_maps(maps)
    masks = as_masks(masks, len(maps))
    maps = resize(maps, masks.shape[1:])
    flat_shape = (len(maps), maps.shape[1] * maps.shape[2])
    return maps.reshape(flat_shape), masks.reshape(flat_shape)


def _top_k_in_mask(above, tied, share, masks):
    """`Σ_{i in mask} w_i` for the top-`k` membership `w` of `top_k`."""
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
    # Adding the mask bit to the even keys sets their lowest bit, as an
    # OR would; adding the masks' bytes (bool is one 0/1 byte) is about
    # twice as fast as OR-ing the bools, which NumPy casts through a buffer.
    np.add(keys, masks.view(np.uint8), out=keys, casting="unsafe")
    keys.sort(axis=1)
    return keys


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
    return _mass_in_mask(*_flat_maps_and_masks(maps, masks))


def _mass_in_mask(flat, flat_masks):
    result = safe_divide(
        row_dot(flat, flat_masks), flat.sum(axis=1, dtype=np.float64)
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

        Swap step (module docstring, near-ties): a swap of the two largest
        values turns a hit into a miss: 1 for one image.
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
    return _pointing_game(flat, flat_masks, targets)


def _pointing_game(flat, flat_masks, targets):
    maxima = flat == flat.max(axis=1, keepdims=True)
    result = safe_divide(
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

        Swap step (module docstring, near-ties): `1 / P`.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    return _rank_accuracy(flat, flat_masks, np.sort(flat, axis=1))


def _rank_accuracy(flat, flat_masks, sorted_values):
    mask_sizes = np.count_nonzero(flat_masks, axis=1)
    above, tied, share = top_k(flat, np.maximum(mask_sizes, 1), sorted_values)
    result = safe_divide(
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

        Swap step (module docstring, near-ties): `1 / (P Q)`.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    keys = _sorted_keys(flat, flat_masks)
    return _roc_auc(flat, flat_masks, keys, keys >> keys.dtype.type(1))


def _roc_auc(flat, flat_masks, keys, sorted_values, tied_pairs=None):
    """`roc_auc` of flat maps from their `_sorted_keys` and ``keys >> 1``
    (and `_tied_pairs` of every row, when already known)."""
    num_pixels = flat.shape[1]
    num_positive = np.count_nonzero(flat_masks, axis=1).astype(np.float64)
    num_negative = num_pixels - num_positive
    # Sorted by value; among equal values, negatives before positives.
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
    if tied_pairs is not None:
        pairs -= 0.5 * tied_pairs
        rows = np.zeros(0, int)
    else:
        rows = np.flatnonzero(has_ties(sorted_values))
    if rows.size:
        # Tied pairs count one half: remove half of them per tie group.
        pairs[rows] -= 0.5 * _tied_pairs(
            sorted_values[rows], sorted_masks[rows]
        )
    result = safe_divide(pairs, num_positive * num_negative)
    result[~flat.any(axis=1)] = np.nan
    return result


def _tied_pairs(sorted_values, sorted_masks):
    """``(N,)`` float64: per row, the (positive, negative) pairs of equal
    value, ``Σ_groups positives · negatives`` over the groups of equal
    values (`tie_groups`). Only the pixels of groups of two or more are
    gathered: a single pixel forms no pair, and the sums are of integers,
    exact in any order."""
    tied = sorted_values[:, 1:] == sorted_values[:, :-1]
    member = np.zeros(sorted_values.shape, bool)
    member[:, 1:] = tied
    member[:, :-1] |= tied
    row, column = np.nonzero(member)
    values = sorted_values[row, column]
    first = np.ones(len(row), bool)
    first[1:] = (row[1:] != row[:-1]) | (values[1:] != values[:-1])
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(row)))
    positives = np.add.reduceat(
        sorted_masks[row, column].astype(np.int64), starts
    )
    return np.bincount(
        row[starts],
        weights=positives * (sizes - positives),
        minlength=len(sorted_values),
    )


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

        Swap step (module docstring, near-ties): at most `1 / P` (`I`
        moves by 1 and `k + |M| - I ≥ |M|`).
    """
    fraction = check_fraction(fraction)
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    return _top_fraction_iou(flat, flat_masks, fraction)


def _top_fraction_iou(flat, flat_masks, fraction, sorted_values=None):
    num_top = num_top_pixels(fraction, flat.shape[1])
    above, tied, share = top_k(flat, np.full(len(flat), num_top), sorted_values)
    intersection = _top_k_in_mask(above, tied, share, flat_masks)
    union = num_top + np.count_nonzero(flat_masks, axis=1) - intersection
    result = safe_divide(intersection, union)
    result[~flat_masks.any(axis=1) | ~flat.any(axis=1)] = np.nan
    return result


def foreground_metrics(maps, masks):
    """Every foreground metric of each map, sharing the work between them.

    The same values as calling `mass_in_mask`, `pointing_game`,
    `rank_accuracy`, `roc_auc` and `top_fraction_iou` (default options)
    one by one, but the maps are validated and resized to the masks' size
    once, and `rank_accuracy` and `top_fraction_iou` find their cuts in
    the sort of `roc_auc`. Peak memory is
    about ten float64 copies of the resized maps; pass a few hundred
    images at a time for large masks.

    Args:
        maps: `(N, H, W)` non-negative maps; resized (bilinear) to the masks'
            size if it differs.
        masks: `(N, H, W)` bool foreground masks.

    Returns:
        A dict from metric name (the keys of
        `explain_attn.metrics.FOREGROUND_METRICS`, in that order) to `(N,)`
        float64 values.
    """
    flat, flat_masks = _flat_maps_and_masks(maps, masks)
    return _from_sorted_keys(flat, flat_masks, _sorted_keys(flat, flat_masks))


def foreground_metrics_of_one_map(one_map, masks):
    """`foreground_metrics` of one map against each of many masks.

    The same values as ``foreground_metrics(np.broadcast_to(one_map,
    masks.shape), masks)``, but the map is validated, resized and sorted
    once: each mask only regroups the map's sorted pixels (among pixels of
    equal value, those outside the mask come first, as in the shared
    sort). For maps that do not depend on the image, such as the report's
    flat map and centre prior.

    Args:
        one_map: ``(h, w)`` non-negative map; resized (bilinear) to the
            masks' size if it differs.
        masks: ``(N, H, W)`` bool foreground masks.

    Returns:
        As `foreground_metrics`.
    """
    one = as_maps(np.asarray(one_map)[None], "one_map")
    masks = as_masks(masks, len(np.asarray(masks)))
    row = resize(one, masks.shape[1:]).reshape(-1)
    flat_masks = masks.reshape(len(masks), row.size)
    flat = np.broadcast_to(row, flat_masks.shape)
    return _from_counts(flat, flat_masks, _one_map_counts(row, flat_masks))


def _one_map_counts(row, flat_masks):
    """What `_key_counts` reads from the sorted keys of ``row`` repeated
    for every mask, from one sort of ``row`` and the mask pixels of each
    group of equal values.

    The repeated map's keys are never made: in every row, a group of
    ``n`` equal values with ``k`` of them in the mask sorts its ``n - k``
    outside pixels first, so every count at a cut, the tied pairs
    (``k (n - k)`` per group) and the mask pixels' sorted positions
    (``k·end - k (k + 1) / 2`` per group ending at ``end``) follow from
    the ``(N, groups)`` counts. All are integers, equal to those of the
    keys.
    """
    unsigned = np.uint32 if row.dtype == np.float32 else np.uint64
    base = np.left_shift(np.ascontiguousarray(row).view(unsigned), 1)
    order = np.argsort(base, kind="stable")
    base = base[order]
    first = np.ones(base.size, bool)
    first[1:] = base[1:] != base[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], base.size)
    inside = np.add.reduceat(
        flat_masks[:, order], starts, axis=1, dtype=np.int64
    )
    # Mask pixels in each group and every later one.
    from_group = np.cumsum(inside[:, ::-1], axis=1)[:, ::-1]
    num_positive = from_group[:, 0]
    num_pixels, rows = base.size, np.arange(len(inside))
    cut_positions = {
        "rank": num_pixels - np.maximum(num_positive, 1),
        "top": num_pixels - num_top_pixels(DEFAULT_FRACTION, num_pixels),
        "max": num_pixels - 1,
    }
    counts = {}
    for name, position in cut_positions.items():
        group = np.searchsorted(starts, position, side="right") - 1
        tied_inside = inside[rows, group]
        counts[name] = {
            "k": num_pixels - position,
            "above": num_pixels - ends[group],
            "tied": ends[group] - starts[group],
            "above_inside": from_group[rows, group] - tied_inside,
            "tied_inside": tied_inside,
        }
    positions = inside * ends - inside * (inside + 1) // 2
    counts["positions"] = positions.sum(axis=1).astype(np.float64)
    counts["tied_pairs"] = (inside * (ends - starts - inside)).sum(axis=1)
    counts["num_positive"] = num_positive
    counts["zero"] = np.full(len(inside), (base[-1] >> 1) == 0)
    return counts


def _from_sorted_keys(flat, flat_masks, keys, tied_pairs=None):
    """Every foreground metric from the flat maps, masks and sorted keys
    (and `_tied_pairs` of every row, when already known).

    The same values, bit for bit, as `_mass_in_mask`, `_pointing_game`,
    `_rank_accuracy`, `_roc_auc` and `_top_fraction_iou` (what the
    metrics called one by one compute), with fewer passes over the
    pixels: every count those functions take over a row (pixels above or
    at a cut, inside the mask or not, tied pairs) is an integer that the
    sorted keys give by position, so they are read by binary search
    (`row_searchsorted`) and by counting the mask bits of sorted ranges.
    The counts are equal, so the same float operations on them give the
    same numbers.
    """
    return _from_counts(flat, flat_masks, _key_counts(keys, tied_pairs))


def _key_counts(keys, tied_pairs=None):
    """The integer counts `_from_counts` takes, read from sorted keys."""
    num_pixels = keys.shape[1]
    sorted_masks = _lowest_bits(keys)  # The mask bits in sorted order.
    num_positive = sorted_masks.sum(axis=1, dtype=np.int64)
    counts = _counts_at_cuts(num_pixels, keys, sorted_masks, num_positive)
    # As `_roc_auc`: the sorted positions of the mask pixels (the pairs
    # with the negative sorted first); a sum of integers, exact.
    counts["positions"] = np.einsum(
        "ij,j->i",
        sorted_masks,
        np.arange(num_pixels, dtype=np.float64),
        dtype=np.float64,
        casting="unsafe",
    )
    if tied_pairs is None:
        tied_pairs = _straddling_tied_pairs(keys, sorted_masks)
    counts["tied_pairs"] = tied_pairs
    counts["num_positive"] = num_positive
    # All-zero maps: the largest value is 0 (``-0.0`` gives the key of 0).
    counts["zero"] = (keys[:, -1] >> keys.dtype.type(1)) == 0
    return counts


def _from_counts(flat, flat_masks, counts):
    """Every foreground metric from `_key_counts` or `_one_map_counts`."""
    num_positive, zero = counts["num_positive"], counts["zero"]
    empty = num_positive == 0
    return {
        "mass_in_mask": _mass_in_mask(flat, flat_masks),
        "pointing_game": _pointing_from_counts(counts["max"], empty | zero),
        "rank_accuracy": _rank_from_counts(counts["rank"], num_positive, zero),
        "roc_auc": _roc_from_counts(flat.shape[1], counts),
        "top_fraction_iou": _iou_from_counts(
            counts["top"], num_positive, empty | zero
        ),
    }


def _lowest_bits(keys):
    """``(keys & 1)`` as ``uint8``: the mask bit of every key.

    Read from each key's lowest byte (a strided view), which is about
    twice as fast as masking the whole keys and casting the result.
    """
    keys = np.ascontiguousarray(keys)  # No copy: keys are made whole.
    lowest = 0 if keys.dtype.str[0] == "<" else keys.itemsize - 1
    low_bytes = keys.view(np.uint8).reshape(*keys.shape, keys.itemsize)
    return low_bytes[..., lowest] & np.uint8(1)


def _counts_at_cuts(num_pixels, keys, sorted_masks, num_positive):
    """Per row: the integer counts of `top_k`, `_top_k_in_mask` and
    `_pointing_game` at the rank metrics' cuts, read from sorted keys.

    For a cut value ``c`` (the value at a sorted position), the keys of
    value ``c`` run from ``2c`` (outside the mask) to ``2c + 1`` (inside):
    the left insertion points of ``2c``, ``2c + 1`` and ``2c + 2`` bound the
    pixels equal to ``c`` and those of them in the mask; the mask bits
    of the sorted keys after them are the mask pixels above the cut.
    """
    one = keys.dtype.type(1)
    rows = np.arange(len(keys))
    num_top = num_top_pixels(DEFAULT_FRACTION, num_pixels)
    cut_positions = {
        "rank": num_pixels - np.maximum(num_positive, 1),
        "top": np.full(len(keys), num_pixels - num_top),
        "max": np.full(len(keys), num_pixels - 1),
    }
    found = {}
    for name, position in cut_positions.items():
        cut = keys[rows, position] >> one
        targets = np.stack([cut << one, (cut << one) | one, (cut + one) << one])
        start, first_inside, stop = row_searchsorted(keys, rows, targets)
        found[name] = {
            "k": num_pixels - position,
            "above": num_pixels - stop,
            "tied": stop - start,
            "tied_inside": stop - first_inside,
        }
    for name in ("rank", "top"):  # The pointing game needs no such count.
        found[name]["above_inside"] = _bits_from(
            sorted_masks, num_pixels - found[name]["above"]
        )
    return found


def _bits_from(sorted_masks, starts):
    """``(N,)`` int64: the set bits of each row from ``starts[row]`` on.

    One `np.count_nonzero` per row over the row's tail: the tails are
    contiguous bytes, and a row costs a microsecond of Python, where a
    running count of every row (`np.cumsum`) costs a pass that writes four
    bytes per pixel (about 40x the time on 41 masks of 224 x 224, equal on
    2,048 masks of 32 x 32).
    """
    return np.array(
        [
            np.count_nonzero(row[start:])
            for row, start in zip(sorted_masks, starts, strict=True)
        ],
        dtype=np.int64,
    )


def _weight_in_mask(counts):
    """`_top_k_in_mask` from counts: ``Σ_{i in M} w_i``."""
    share = (counts["k"] - counts["above"]) / counts["tied"]
    return counts["above_inside"] + share * counts["tied_inside"]


def _pointing_from_counts(counts, undefined):
    """`_pointing_game` with the mask as target, from `_counts_at_cuts`
    at the largest value (its ties are the maxima)."""
    result = safe_divide(counts["tied_inside"], counts["tied"])
    result[undefined] = np.nan
    return result


def _rank_from_counts(counts, num_positive, zero):
    """`_rank_accuracy` from `_counts_at_cuts`."""
    result = safe_divide(_weight_in_mask(counts), num_positive)
    result[zero] = np.nan
    return result


def _iou_from_counts(counts, num_positive, undefined):
    """`_top_fraction_iou` at `DEFAULT_FRACTION` from `_counts_at_cuts`."""
    intersection = _weight_in_mask(counts)
    union = counts["k"] + num_positive - intersection
    result = safe_divide(intersection, union)
    result[undefined] = np.nan
    return result


def _roc_from_counts(num_pixels, counts):
    """`_roc_auc` from the mask pixels' sorted positions and tied pairs,
    with its float operations in its order."""
    num_positive = counts["num_positive"].astype(np.float64)
    num_negative = num_pixels - num_positive
    pairs = counts["positions"].astype(np.float64)  # A copy, written below.
    pairs -= num_positive * (num_positive - 1.0) / 2.0
    # Rows without tied pairs subtract 0.0, which changes no value.
    pairs -= 0.5 * np.asarray(counts["tied_pairs"], np.float64)
    result = safe_divide(pairs, num_positive * num_negative)
    result[counts["zero"]] = np.nan
    return result


def _straddling_tied_pairs(keys, sorted_masks):
    """`_tied_pairs` of every row from sorted keys.

    Only a group of equal values with pixels both outside and inside the
    mask holds pairs; in sorted order its outside pixels come first, so
    the group has exactly one place where an outside key ``2v`` is
    followed by an inside key ``2v + 1``. Those places are found among
    the 0 -> 1 steps of the sorted mask bits; each group's bounds are two
    binary searches. The sums are of integers, exact.
    """
    one = keys.dtype.type(1)
    width = keys.shape[1]
    steps = np.flatnonzero(sorted_masks[:, 1:] > sorted_masks[:, :-1])
    rows, columns = np.divmod(steps, width - 1)
    flat_keys = keys.reshape(-1)
    low = flat_keys[rows * width + columns]
    same = flat_keys[rows * width + columns + 1] == low + one
    rows, columns, low = rows[same], columns[same], low[same]
    start = row_searchsorted(keys, rows, low)
    stop = row_searchsorted(keys, rows, low + 2 * one)
    outside = columns + 1 - start
    pairs = outside * (stop - columns - 1)
    return np.bincount(rows, weights=pairs, minlength=len(keys))
