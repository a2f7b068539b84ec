"""Attention: our layers, and the kinds of attention module we can read.

- `layers`: `SpatialAttention` (the tutorial's layer, also
  `AggregatedAttention`), `ChannelAttention` and `CBAM`, saveable.
- `kinds`: what an attention module's map is, how to replace it and what
  its channel weights are (`AttentionKind`); a new kind of attention found
  in users' models goes there.
"""

from explain_attn.attention.layers import (
    CBAM,
    AggregatedAttention,
    ChannelAttention,
    SpatialAttention,
)

__all__ = [
    "CBAM",
    "AggregatedAttention",
    "ChannelAttention",
    "SpatialAttention",
]
