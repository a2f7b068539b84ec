"""Overlap of predicted and true label maps: Dice, IoU, pixel accuracy.

Pure NumPy over ``(N, H, W)`` integer label maps, label 0 the background
and ``1 .. num_labels - 1`` the foreground classes; counts in int64.

Decided cases (as MONAI's ``ignore_empty``): a class absent from both the
prediction and the truth of an image has no overlap to measure, so its
Dice and IoU are NaN there (excluded from means, counted by the summaries);
a class absent from the truth but predicted scores 0, and so does one
present in the truth but not predicted. An image's score is the mean over
the foreground classes that are defined for it; an image with neither a
true nor a predicted foreground pixel has a NaN score.
"""

import numpy as np

__all__ = [
    "dice_per_class",
    "image_scores",
    "iou_per_class",
    "pixel_accuracy",
]


def _label_maps(predicted, target):
    """Both as arrays, checked to be ``(N, H, W)`` maps of one shape."""
    predicted = np.asarray(predicted)
    target = np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 3:
        raise ValueError(
            "`predicted` and `target` must be (N, H, W) label maps of one "
            f"shape. Received: predicted.shape={predicted.shape}, "
            f"target.shape={target.shape}"
        )
    return predicted, target


def _checked(predicted, target, num_labels):
    predicted, target = _label_maps(predicted, target)
    if isinstance(num_labels, bool) or not isinstance(num_labels, int):
        raise TypeError(f"Received: num_labels={num_labels!r}; expected int.")
    if num_labels < 2:
        raise ValueError(
            "`num_labels` counts the background too: at least 2. Received: "
            f"num_labels={num_labels}"
        )
    for name, values in (("predicted", predicted), ("target", target)):
        if values.size and (values.min() < 0 or values.max() >= num_labels):
            raise ValueError(
                f"`{name}` holds labels outside 0 .. {num_labels - 1}. "
                f"Received: {name} from {values.min()} to {values.max()}"
            )
    return predicted.reshape(len(predicted), -1), target.reshape(
        len(target), -1
    )


def _counts(predicted, target, num_labels):
    """``(N, L - 1)`` int64 intersections, predicted and true areas."""
    flat_p, flat_t = _checked(predicted, target, num_labels)
    classes = np.arange(1, num_labels)[None, :, None]
    in_p = flat_p[:, None, :] == classes
    in_t = flat_t[:, None, :] == classes
    intersection = np.sum(in_p & in_t, axis=2, dtype=np.int64)
    return (
        intersection,
        in_p.sum(2, dtype=np.int64),
        in_t.sum(2, dtype=np.int64),
    )


def dice_per_class(predicted, target, *, num_labels):
    """Dice of each foreground class in each image.

    Args:
        predicted: ``(N, H, W)`` int predicted labels.
        target: ``(N, H, W)`` int true labels.
        num_labels: Labels including the background (0).

    Returns:
        ``(N, num_labels - 1)`` float64; column ``k`` is class ``k + 1``.
        NaN where the class is in neither map (see the module).

    Notes:
        ``Dice = 2 |P ∩ T| / (|P| + |T|)``.
    """
    intersection, area_p, area_t = _counts(predicted, target, num_labels)
    total = area_p + area_t
    safe = np.where(total > 0, total, 1)
    return np.where(total > 0, 2.0 * intersection / safe, np.nan)


def iou_per_class(predicted, target, *, num_labels):
    """IoU (Jaccard) of each foreground class in each image.

    Returns and cases as `dice_per_class`.

    Notes:
        ``IoU = |P ∩ T| / |P ∪ T|``.
    """
    intersection, area_p, area_t = _counts(predicted, target, num_labels)
    union = area_p + area_t - intersection
    safe = np.where(union > 0, union, 1)
    return np.where(union > 0, intersection / safe, np.nan)


def image_scores(per_class):
    """Each image's mean over its defined classes: ``(N,)``; NaN where no
    class is defined (no foreground in truth or prediction)."""
    per_class = np.asarray(per_class, dtype=np.float64)
    defined = ~np.isnan(per_class)
    count = defined.sum(axis=1)
    total = np.where(defined, per_class, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def pixel_accuracy(predicted, target):
    """Share of each image's pixels whose label is right: ``(N,)`` float64
    (background included)."""
    predicted, target = _label_maps(predicted, target)
    return np.mean(predicted == target, axis=(1, 2), dtype=np.float64)
