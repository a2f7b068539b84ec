"""Models: the built-in networks, saving and loading, training, the graph.

- `architectures`: the tutorial's networks and the demo pair.
- `saving`: `.keras` files, safe mode, atomic writes.
- `training`: seeded training of a model on a dataset.
- `graph`: the flat view of a model's graph (nested models opened) from
  which every layer can be read.
- `heads`: pre-softmax scores and probabilities of a classifier.
"""

from explain_attn.models.architectures import ARCHITECTURES, build_model
from explain_attn.models.saving import load_model, save_model

__all__ = ["ARCHITECTURES", "build_model", "load_model", "save_model"]
