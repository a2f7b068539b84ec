"""The metrics by name, and a plain-language definition of each, for reports."""

from explain_attn.metrics.agreement import (
    pearson,
    spearman,
    top_fraction_overlap,
)
from explain_attn.metrics.arrays import DEFAULT_FRACTION
from explain_attn.metrics.concentration import entropy, sparseness
from explain_attn.metrics.foreground import (
    mass_in_mask,
    pointing_game,
    rank_accuracy,
    roc_auc,
    top_fraction_iou,
)

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
