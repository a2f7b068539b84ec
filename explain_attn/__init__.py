"""explain-attn: attention-map explainability for Keras ConvNets.

Attention maps by layer name, batched Grad-CAM, metrics against ground-truth
masks, and self-contained HTML reports.
"""

from importlib.metadata import PackageNotFoundError, version

from explain_attn.layers import (
    CBAM,
    AggregatedAttention,
    ChannelAttention,
    SpatialAttention,
)
from explain_attn.models import ARCHITECTURES, build_model
from explain_attn.saving import load_model, save_model

try:
    __version__ = version("explain-attn")
except PackageNotFoundError:  # A source checkout that was not installed.
    __version__ = "0+unknown"

__all__ = [
    "ARCHITECTURES",
    "AggregatedAttention",
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
    "__version__",
    "build_model",
    "load_model",
    "save_model",
]
