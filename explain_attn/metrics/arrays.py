"""Validation and the array helpers shared by the metric modules.

Maps and masks are validated here (`as_maps`, `as_masks`), resized to a
common size (`resize`, bilinear with half-pixel centres) and reduced row by
row (`row_dot`, `safe_divide`). `top_k` gives the top-`k` membership with
ties at the cut sharing the slots, and `tie_groups` / `has_ties` find the
groups of equal values in sorted rows; the conventions they implement are
described in `explain_attn.metrics`.
"""

import math

import numpy as np

from explain_attn import options

DEFAULT_FRACTION = 0.2
"""Default share of pixels in the "top" set of the top-fraction metrics."""


def check_real(array, name):
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


def as_maps(maps, name="maps", *, non_negative=True):
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
    check_real(array, name)
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


def as_masks(masks, num_images):
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


def check_fraction(fraction):
    """Validates a top-set share in (0, 1]; returns it as a Python float."""
    return options.check_fraction("fraction", fraction, low_open=True)


def _bilinear_taps(size_out, size_in):
    """The two taps of 1-D bilinear interpolation from ``size_in`` samples.

    Half-pixel centres: output pixel `i` samples input coordinate
    `(i + 0.5) * size_in / size_out - 0.5`, clamped to `[0, size_in - 1]`.

    Returns:
        ``(lower, upper, weight_lower, weight_upper)``: ``(size_out,)``
        input indices and float64 weights; output ``i`` is
        ``weight_lower[i] * x[lower[i]] + weight_upper[i] * x[upper[i]]``
        (at a clamped edge ``upper == lower`` and ``weight_upper == 0``).
    """
    coordinates = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    coordinates = np.clip(coordinates, 0.0, size_in - 1)
    lower = np.floor(coordinates).astype(np.intp)
    upper = np.minimum(lower + 1, size_in - 1)
    weight_upper = coordinates - lower
    return lower, upper, 1.0 - weight_upper, weight_upper


_BLOCK_VALUES = 1 << 17
"""Output values per block of images in `_interpolate` (1 MiB of float64).

Each block is written, scaled and summed while it is in the cache: on 41
maps of 56 x 56 enlarged to 224 x 224, whole-array passes took 19 ms and
blocks of this size 5-6 ms (one core)."""


def _interpolate(maps, axis, size_out):
    """float64 ``maps`` interpolated along ``axis`` (1: rows, 2: columns)
    to ``size_out`` samples, in blocks of images (`_BLOCK_VALUES`)."""
    lower, upper, weight_lower, weight_upper = _bilinear_taps(
        size_out, maps.shape[axis]
    )
    if axis == 1:  # A weight per row, broadcast along the columns.
        weight_lower, weight_upper = (
            weight_lower[:, None],
            weight_upper[:, None],
        )
    shape = list(maps.shape)
    shape[axis] = size_out
    result = np.empty(shape)
    step = max(1, _BLOCK_VALUES // (shape[1] * shape[2]))
    scratch = np.empty((min(step, len(maps)), *shape[1:]))
    for start in range(0, len(maps), step):
        block = maps[start : start + step]
        part = result[start : start + step]
        upper_part = scratch[: len(part)]
        np.take(block, lower, axis=axis, out=part)
        part *= weight_lower
        np.take(block, upper, axis=axis, out=upper_part)
        upper_part *= weight_upper
        part += upper_part
    return result


def resize(maps, shape):
    """Bilinear resize of `(N, h, w)` maps to float64 `(N, *shape)`.

    Separable: along the columns, then along the rows, two taps each
    (`_bilinear_taps`): ``w_lower * x[lower] + w_upper * x[upper]``.
    Written with NumPy's element-wise operations rather than as the
    matrix products ``rows @ maps @ columns.T``, which compute the same
    sums: the products go to a BLAS that, called from the report's worker
    thread while TensorFlow keeps every core busy, starts threads of its
    own that wait for cores (a report through the Python API on 300
    images of 224 x 224 took 40.5 CPU s with NumPy's default BLAS threads
    and 35.3 s with one), and whose kernels (fused multiply-adds or not)
    depend on the machine. The element-wise form rounds the same way on
    every machine, runs on one core, and is no slower (41 maps of 56 x 56
    to 224 x 224: 7 ms against BLAS's 9 ms on one thread).
    """
    if maps.shape[1:] == tuple(shape):
        return maps
    maps = maps.astype(np.float64, copy=False)
    if maps.shape[2] != shape[1]:
        maps = _interpolate(maps, 2, shape[1])
    if maps.shape[1] != shape[0]:
        maps = _interpolate(maps, 1, shape[0])
    return maps


def safe_divide(numerator, denominator):
    """`numerator / denominator`, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def row_dot(flat, weights):
    """Row-wise `Σ_j flat[i, j] * weights[i, j]`, accumulated in float64."""
    return np.einsum(
        "ij,ij->i", flat, weights, dtype=np.float64, casting="unsafe"
    )


def top_k(flat, k, sorted_ascending=None):
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


def tie_groups(sorted_values):
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


def row_searchsorted(sorted_rows, rows, targets):
    """``np.searchsorted(sorted_rows[r], t)`` for every ``(r, t)`` pair.

    Args:
        sorted_rows: ``(N, P)`` rows, each sorted ascending.
        rows: Integer row indices, any shape.
        targets: Values to look up, broadcastable with ``rows``.

    Returns:
        The number of entries of each row below each target (the left
        insertion point), an ``intp`` array of the broadcast shape.

    One binary search run on every pair at once: ``ceil(log2(P + 1))``
    steps of one gather each. `np.searchsorted` takes one row per call,
    and the metrics look up a few values in each of up to thousands of
    rows (small masks), where a Python loop over the rows would cost more
    than the search.
    """
    rows, targets = np.broadcast_arrays(rows, targets)
    width = sorted_rows.shape[1]
    low = np.zeros(rows.shape, np.intp)
    high = np.full(rows.shape, width, np.intp)
    for _ in range(int(width).bit_length()):
        middle = (low + high) // 2
        active = low < high
        probe = sorted_rows[rows, np.minimum(middle, width - 1)]
        less = active & (probe < targets)
        low = np.where(less, middle + 1, low)
        high = np.where(active & ~less, middle, high)
    return low


def has_ties(sorted_values):
    """`(N,)` bool: whether each row-wise sorted row repeats a value."""
    return (sorted_values[:, 1:] == sorted_values[:, :-1]).any(axis=1)


def num_top_pixels(fraction, num_pixels):
    """Pixels in the top `fraction` of `num_pixels`: `ceil(fraction·P)` >= 1."""
    # Rounded first so that e.g. 0.2 * 25 counts as exactly 5.
    return max(1, math.ceil(round(fraction * num_pixels, 9)))
