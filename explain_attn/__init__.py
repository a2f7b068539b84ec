"""explain-attn: attention-map explainability for Keras ConvNets.

Attention maps by layer name, batched Grad-CAM and its relatives, metrics
against ground-truth masks, and self-contained HTML reports. The
subpackages follow the data path: `data` -> `models` and `attention` ->
`explanations` (maps, CAMs) -> `metrics` -> `faithfulness` -> `report`.

The public names below are imported on first use, so that ``explain-attn
--help`` does not wait for TensorFlow.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("explain-attn")
except PackageNotFoundError:  # A source checkout that was not installed.
    __version__ = "0+unknown"

_EXPORTS = {
    "explain_attn.attention": (
        "AggregatedAttention",
        "CBAM",
        "ChannelAttention",
        "SpatialAttention",
    ),
    "explain_attn.data": ("Dataset", "Source", "as_source", "load_dataset"),
    "explain_attn.models": (
        "ARCHITECTURES",
        "build_model",
        "load_model",
        "save_model",
    ),
    "explain_attn.models.insert": ("add_attention",),
    "explain_attn.models.task": ("model_task",),
    "explain_attn.models.recorder": ("AttentionRecorder",),
    "explain_attn.models.sinks": ("MLflowSink", "TensorBoardSink", "WandbSink"),
    "explain_attn.explanations": (
        "METHODS",
        "Explainer",
        "Explanation",
        "SegGradCAM",
        "attention_layer_names",
        "attention_maps",
        "channel_attention_weights",
        "describe_layers",
        "explain",
        "explanations_for",
        "grad_cam",
        "grad_cam_plus_plus",
        "hires_cam",
        "layer_cam",
    ),
    "explain_attn.faithfulness": (
        "attention_interventions",
        "deletion_insertion",
        "randomization_check",
    ),
    "explain_attn.report": (
        "Report",
        "build_report",
        "render_html",
        "report_from_sources",
        "write_json",
    ),
}
_MODULE_OF = {
    name: module for module, names in _EXPORTS.items() for name in names
}

__all__ = ["__version__", *sorted(_MODULE_OF)]


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'explain_attn' has no attribute {name!r}")


def __dir__():
    return __all__
