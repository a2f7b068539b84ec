"""Explanations: maps of what a model looks at, by method, model and layer.

- `explanation`: `Explanation` (a model, a method, a layer) and `Explainer`,
  which computes the maps of a list of explanations batch by batch.
- `methods`: the registry of methods by name (``attention``, ``grad_cam``,
  ``grad_cam_plus_plus``, ``layer_cam``, ``hires_cam``).
- `cam`: the class-activation-map family; a new CAM method is a short
  `BaseCAM` subclass there.
- `seg_cam`: Seg-Grad-CAM, the CAM of segmentation models.
- `attention`: attention weights read through each module's kind.
- `lookup`: layers by path, name or pattern; `inputs`: image checks and
  batching; `predict`: predicted classes; `export`: maps to ``.npz``.
"""

from explain_attn.explanations import cam  # noqa: F401  (registers methods)
from explain_attn.explanations.attention import (
    attention_maps,
    channel_attention_weights,
)
from explain_attn.explanations.cam import (
    BaseCAM,
    grad_cam,
    grad_cam_plus_plus,
    hires_cam,
    layer_cam,
)
from explain_attn.explanations.explanation import (
    Explainer,
    Explanation,
    explain,
    explanations_for,
)
from explain_attn.explanations.methods import METHODS, get_method
from explain_attn.explanations.predict import predict_classes
from explain_attn.explanations.seg_cam import SegGradCAM
from explain_attn.models.lookup import (
    attention_layer_names,
    default_cam_layer,
    describe_layers,
    resolve_layers,
)

__all__ = [
    "METHODS",
    "BaseCAM",
    "Explainer",
    "Explanation",
    "SegGradCAM",
    "attention_layer_names",
    "attention_maps",
    "channel_attention_weights",
    "default_cam_layer",
    "describe_layers",
    "explain",
    "explanations_for",
    "get_method",
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "layer_cam",
    "predict_classes",
    "resolve_layers",
]
