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


def _checked_pair(maps_a, maps_b):
    """Validated maps and the shape both are compared at (the larger)."""
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
    return maps_a, maps_b, shape


def _flat_at(maps, shape):
    """``(N, H·W)`` maps resized to ``shape``, and which rows are constant."""
    flat = resize(maps, shape).reshape(len(maps), shape[0] * shape[1])
    return flat, flat.max(axis=1) == flat.min(axis=1)


def _flat_pair(maps_a, maps_b):
    maps_a, maps_b, shape = _checked_pair(maps_a, maps_b)
    flat_a, constant_a = _flat_at(maps_a, shape)
    flat_b, constant_b = _flat_at(maps_b, shape)
    return flat_a, flat_b, constant_a | constant_b


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


class AgreementReference:
    """One set of maps compared with many others, prepared once per size.

    ``AgreementReference(maps_b).compare(name, maps_a)`` equals
    ``AGREEMENT_METRICS[name](maps_a, maps_b)`` (default options) to the
    bit: the reference maps are resized, ranked and cut into their top set
    once for each size they are compared at, not once per call. The report
    compares every attention map of an image with one reference CAM.

    Args:
        maps_b: `(N, H, W)` finite maps, the reference.
    """

    def __init__(self, maps_b):
        self.maps_b = as_maps(maps_b, "maps_b", non_negative=False)
        self._prepared = {}

    def _at(self, maps_a):
        """Validated ``maps_a`` and the reference prepared at their shape."""
        maps_a, _, shape = _checked_pair(maps_a, self.maps_b)
        if shape not in self._prepared:
            flat, constant = _flat_at(self.maps_b, shape)
            self._prepared[shape] = {"flat": flat, "constant": constant}
        return maps_a, shape, self._prepared[shape]

    def compare(self, name, maps_a):
        """`(N,)` float64: agreement ``name`` of ``maps_a`` with the
        reference (``"spearman"``, ``"pearson"`` or
        ``"top_fraction_overlap"``)."""
        functions = {
            "spearman": self.spearman,
            "pearson": self.pearson,
            "top_fraction_overlap": self.top_fraction_overlap,
        }
        if name not in functions:
            raise ValueError(
                f"`name` must be one of {sorted(functions)}. "
                f"Received: name={name!r}"
            )
        return functions[name](maps_a)

    def pearson(self, maps_a):
        """`(N,)` float64: ``pearson(maps_a, maps_b)``."""
        maps_a, shape, prepared = self._at(maps_a)
        flat_a, constant = _flat_at(maps_a, shape)
        constant = constant | prepared["constant"]
        return _pearson_rows(flat_a, prepared["flat"], constant)

    def spearman(self, maps_a):
        """`(N,)` float64: ``spearman(maps_a, maps_b)``."""
        maps_a, shape, prepared = self._at(maps_a)
        if "ranks" not in prepared:
            prepared["ranks"] = _average_ranks(prepared["flat"])
        flat_a, constant = _flat_at(maps_a, shape)
        constant = constant | prepared["constant"]
        return _pearson_rows(
            _average_ranks(flat_a), prepared["ranks"], constant
        )

    def top_fraction_overlap(self, maps_a, *, fraction=DEFAULT_FRACTION):
        """`(N,)` float64: ``top_fraction_overlap(maps_a, maps_b,
        fraction=fraction)``."""
        fraction = check_fraction(fraction)
        maps_a, shape, prepared = self._at(maps_a)
        num_top = num_top_pixels(fraction, shape[0] * shape[1])
        if ("top", num_top) not in prepared:
            flat = prepared["flat"]
            prepared["top", num_top] = top_k(flat, np.full(len(flat), num_top))
        flat_a, constant = _flat_at(maps_a, shape)
        constant = constant | prepared["constant"]
        top_a = top_k(flat_a, np.full(len(flat_a), num_top))
        return _top_overlap(top_a, prepared["top", num_top], num_top, constant)


class SpearmanReference(AgreementReference):
    """One set of maps ranked once, for `spearman` against many others.

    ``SpearmanReference(maps_a)(maps_b)`` equals ``spearman(maps_a,
    maps_b)`` to the bit (`spearman` is symmetric to the bit: the same
    products summed in the same order): an `AgreementReference` whose
    reference is ranked once per size. The randomisation check compares
    its original maps with those of every step of its cascade.

    Args:
        maps_a: `(N, H, W)` finite maps.
    """

    def __init__(self, maps_a):
        super().__init__(as_maps(maps_a, "maps_a", non_negative=False))

    def __call__(self, maps_b):
        """`(N,)` float64: `spearman` of ``maps_a`` and ``maps_b``."""
        return self.spearman(maps_b)


def _top_overlap(top_a, top_b, num_top, constant):
    """`top_fraction_overlap` from the `top_k` memberships of both maps."""
    above_a, tied_a, share_a = top_a
    above_b, tied_b, share_b = top_b
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
    return _top_overlap(
        top_k(flat_a, np.full(len(flat_a), num_top)),
        top_k(flat_b, np.full(len(flat_b), num_top)),
        num_top,
        constant,
    )
