"""Concentration metrics: how focused each map is, without a mask.

`entropy` (spatial Shannon entropy) and `sparseness` (Gini index), each over
`(N, H, W)` non-negative maps, returning `(N,)` float64.
"""

import numpy as np

from explain_attn.metrics.arrays import as_maps, row_dot, safe_divide


def _flat_maps(maps):
    maps = as_maps(maps)
    return maps.reshape(len(maps), maps.shape[1] * maps.shape[2])


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
    result -= safe_divide(row_dot(flat, logs), totals)
    # Rounding can leave -1e-16 where all mass is on one pixel.
    result = np.maximum(result, 0.0)
    if normalize:
        result = safe_divide(result, np.log(flat.shape[1]))
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
    return safe_divide(
        weighted, num_pixels * ordered.sum(axis=1, dtype=np.float64)
    )
