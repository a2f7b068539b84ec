"""Agreement between two explanations of the same images.

`pearson`, `spearman` and `top_fraction_overlap`, each over two `(N, H, W)`
finite (possibly signed) maps, returning `(N,)` float64; maps of different
sizes are both resized to the larger size first.
"""

import numpy as np

from explain_attn.metrics.arrays import (
    DEFAULT_FRACTION,
    as_maps,
    check_fraction,
    num_top_pixels,
    resize,
    row_dot,
    safe_divide,
    top_k,
)


def _flat_pair(maps_a, maps_b):
    maps_a = as_maps(maps_a, "maps_a", non_negative=False)
    maps_b = as_maps(maps_b, "maps_b", non_negative=False)
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
    flat_a = resize(maps_a, shape).reshape(flat_shape)
    flat_b = resize(maps_b, shape).reshape(flat_shape)
    constant = (flat_a.max(axis=1) == flat_a.min(axis=1)) | (
        flat_b.max(axis=1) == flat_b.min(axis=1)
    )
    return flat_a, flat_b, constant


def _pearson_rows(flat_a, flat_b, constant):
    flat_a = flat_a.astype(np.float64, copy=False)
    flat_b = flat_b.astype(np.float64, copy=False)
    centred_a = flat_a - flat_a.mean(axis=1, keepdims=True)
    centred_b = flat_b - flat_b.mean(axis=1, keepdims=True)
    numerator = row_dot(centred_a, centred_b)
    denominator = np.sqrt(
        row_dot(centred_a, centred_a) * row_dot(centred_b, centred_b)
    )
    result = np.clip(safe_divide(numerator, denominator), -1.0, 1.0)
    result[constant] = np.nan
    return result


def _average_ranks(flat):
    """Row-wise ranks `1..P` of `(N, P)` values, ties given their mean rank.

    The vectorised equivalent of `scipy.stats.rankdata(flat, axis=1)`: in
    each sorted row, a value's rank is the mean `(first + last) / 2 + 1` of
    the positions of its group of equal values, found with running maxima
    and minima instead of a loop over the groups.
    """
    num_pixels = flat.shape[1]
    order = np.argsort(flat, axis=1)
    sorted_values = np.take_along_axis(flat, order, axis=1)
    is_start = np.ones(flat.shape, dtype=bool)
    np.not_equal(
        sorted_values[:, 1:], sorted_values[:, :-1], out=is_start[:, 1:]
    )
    del sorted_values
    is_end = np.ones(flat.shape, dtype=bool)
    is_end[:, :-1] = is_start[:, 1:]
    positions = np.arange(num_pixels)
    first = np.maximum.accumulate(np.where(is_start, positions, 0), axis=1)
    last = np.where(is_end, positions, num_pixels - 1)[:, ::-1]
    last = np.minimum.accumulate(last, axis=1)[:, ::-1]
    sorted_ranks = (first + last) / 2.0 + 1.0
    ranks = np.empty(flat.shape)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


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

        Near-ties (see `explain_attn.metrics.foreground`): values are ranked
        exactly as given; a swap of two neighbouring ranks of one map
        moves the result by at most `12 / (n (n + 1))` for `n` pixels.
    """
    flat_a, flat_b, constant = _flat_pair(maps_a, maps_b)
    return _pearson_rows(
        _average_ranks(flat_a), _average_ranks(flat_b), constant
    )


class SpearmanReference:
    """One set of maps ranked once, for `spearman` against many others.

    ``SpearmanReference(maps_a)(maps_b)`` equals ``spearman(maps_a,
    maps_b)`` to the bit; when ``maps_b`` has the shape of ``maps_a``, the
    ranks of ``maps_a`` are not computed again (other shapes go through
    `spearman`). The randomisation check compares its original maps with
    those of every step of its cascade: half the ranking work there.

    Args:
        maps_a: `(N, H, W)` finite maps.
    """

    def __init__(self, maps_a):
        self.maps_a = as_maps(maps_a, "maps_a", non_negative=False)
        flat = self.maps_a.reshape(len(self.maps_a), -1)
        self._constant = flat.max(axis=1) == flat.min(axis=1)
        self._ranks = _average_ranks(flat)

    def __call__(self, maps_b):
        """`(N,)` float64: `spearman` of ``maps_a`` and ``maps_b``."""
        maps_b = as_maps(maps_b, "maps_b", non_negative=False)
        if maps_b.shape != self.maps_a.shape:
            return spearman(self.maps_a, maps_b)
        flat_b = maps_b.reshape(len(maps_b), -1)
        constant = self._constant | (flat_b.max(axis=1) == flat_b.min(axis=1))
        return _pearson_rows(self._ranks, _average_ranks(flat_b), constant)


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
    fraction = check_fraction(fraction)
    flat_a, flat_b, constant = _flat_pair(maps_a, maps_b)
    num_top = num_top_pixels(fraction, flat_a.shape[1])
    above_a, tied_a, share_a = top_k(flat_a, np.full(len(flat_a), num_top))
    above_b, tied_b, share_b = top_k(flat_b, np.full(len(flat_b), num_top))
    # Σ min(u, v) over the four combinations of "above" and "tied".
    intersection = (
        np.count_nonzero(above_a & above_b, axis=1)
        + share_a * np.count_nonzero(tied_a & above_b, axis=1)
        + share_b * np.count_nonzero(above_a & tied_b, axis=1)
        + np.minimum(share_a, share_b)
        * np.count_nonzero(tied_a & tied_b, axis=1)
    )
    # Σ max(u, v) = Σ (u + v) - Σ min(u, v) = 2k - Σ min(u, v).
    result = safe_divide(intersection, 2.0 * num_top - intersection)
    result[constant] = np.nan
    return result
