"""Is the attention used, and is it sane? Three checks.

"Attention is not explanation": a map can look right without the model
relying on it. Three families of checks answer this for a trained model,
one module each:

- `interventions`: at inference, replace one attention layer's map by a
  uniform map, the same map shuffled, the inverted map ``1 - m`` or the
  ground-truth mask, and measure what happens to accuracy.
- `randomization` (Adebayo et al., 2018): re-initialise the weights of a
  clone of the model from the output down, and watch the maps change.
- `deletion` (Petsiuk et al., 2018): blur away (or restore) the pixels an
  explanation ranks highest first and record the true-class probability.

The caller's model is never modified. The report's section that runs all
three is `explain_attn.report.faithfulness`.
"""

from explain_attn.faithfulness.deletion import DEFAULT_STEPS, deletion_insertion
from explain_attn.faithfulness.interventions import (
    INTERVENTIONS,
    attention_interventions,
)
from explain_attn.faithfulness.randomization import (
    FAILURE_THRESHOLD,
    LAYERWISE_LIMIT,
    cascade_steps,
    map_similarity,
    randomization_check,
    reinitialize_layer,
)

__all__ = [
    "DEFAULT_STEPS",
    "FAILURE_THRESHOLD",
    "INTERVENTIONS",
    "LAYERWISE_LIMIT",
    "attention_interventions",
    "cascade_steps",
    "deletion_insertion",
    "map_similarity",
    "randomization_check",
    "reinitialize_layer",
]
