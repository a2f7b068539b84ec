"""Metrics that turn attention maps into numbers.

Pure NumPy/SciPy functions over arrays (no TensorFlow), in the style of
`skimage.metrics`: maps first, options keyword-only, shapes validated first,
float64 accumulation, degenerate cases decided and documented.

Three families, one module each (all names are re-exported here):

- **Per-image metrics** over maps `(N, H, W)` (non-negative), each returning
  `(N,)` float64. Concentration (`concentration`): `entropy`, `sparseness`.
  Foreground overlap with masks `(N, H, W)` bool (`foreground`):
  `mass_in_mask`, `pointing_game`, `rank_accuracy`, `roc_auc`,
  `top_fraction_iou`; `foreground_metrics` computes all five at once,
  resizing the maps once and sharing one sort.
- **Agreement** between two explanations of the same images (`agreement`):
  `spearman`, `pearson`, `top_fraction_overlap`, each `(N,)` float64;
  `AgreementReference` (and `SpearmanReference`) prepares one set of maps
  once for many comparisons.
- **Statistics** that feed every number a report shows (`statistics`):
  `summarize`, `paired_difference`, `accuracy_interval`, each returning a
  dict of plain Python numbers (JSON-ready; NaN where undefined);
  `paired_differences` for many pairs at once (sharing the draws).

The metrics by name and their plain-language definitions are in `registry`;
validation and the shared array helpers in `arrays`.

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

from explain_attn.metrics.agreement import (
    AgreementReference,
    SpearmanReference,
    pearson,
    spearman,
    top_fraction_overlap,
)
from explain_attn.metrics.arrays import DEFAULT_FRACTION
from explain_attn.metrics.bootstrap import (
    BootstrapSums,
    PoissonBootstrap,
    interval_from_sums,
    poisson_weights,
)
from explain_attn.metrics.concentration import entropy, sparseness
from explain_attn.metrics.foreground import (
    foreground_metrics,
    foreground_metrics_of_one_map,
    mass_in_mask,
    pointing_game,
    rank_accuracy,
    roc_auc,
    top_fraction_iou,
)
from explain_attn.metrics.registry import (
    AGREEMENT_METRICS,
    CONCENTRATION_METRICS,
    FOREGROUND_METRICS,
    METRIC_DEFINITIONS,
    PER_IMAGE_METRICS,
)
from explain_attn.metrics.statistics import (
    accuracy_interval,
    paired_difference,
    paired_differences,
    summarize,
)

__all__ = [
    "AGREEMENT_METRICS",
    "CONCENTRATION_METRICS",
    "DEFAULT_FRACTION",
    "FOREGROUND_METRICS",
    "METRIC_DEFINITIONS",
    "PER_IMAGE_METRICS",
    "BootstrapSums",
    "PoissonBootstrap",
    "AgreementReference",
    "SpearmanReference",
    "accuracy_interval",
    "entropy",
    "foreground_metrics",
    "foreground_metrics_of_one_map",
    "interval_from_sums",
    "mass_in_mask",
    "paired_difference",
    "paired_differences",
    "pearson",
    "poisson_weights",
    "pointing_game",
    "rank_accuracy",
    "roc_auc",
    "sparseness",
    "spearman",
    "summarize",
    "top_fraction_iou",
    "top_fraction_overlap",
]
