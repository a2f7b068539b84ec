"""Helpers shared by the faithfulness checks: labels, counts, medians."""

import math

import numpy as np

__all__ = ["as_labels", "finite_median"]


def as_labels(labels, count, num_classes):
    """``labels`` as ``(count,)`` int32 in ``[0, num_classes)``.

    Raises:
        TypeError: If they are not integers.
        ValueError: If their number or values do not fit.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"Labels must be integers. Received: dtype={labels.dtype}"
        )
    if labels.shape != (count,):
        raise ValueError(
            f"Expected one label per image ({count}). Received: "
            f"labels.shape={labels.shape}"
        )
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}). Received: values from "
            f"{labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int32)


def finite_median(values):
    """Median of the finite values; NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan
