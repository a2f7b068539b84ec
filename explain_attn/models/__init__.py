"""Models: the built-in networks, saving and loading, training, the graph.

- `architectures`: the tutorial's networks and the demo pair.
- `saving`: `.keras` files, safe mode, atomic writes.
- `training`: seeded training of a model on a dataset, with the recipe
  (standardised inputs, recalibrated BatchNormalization, checks).
- `insert`: `add_attention`, attention inserted after named layers.
- `backbones`: classifiers on `keras.applications` backbones, offline.
- `recorder`: `AttentionRecorder`, attention recorded while training.
- `sinks`: where the record also goes: TensorBoard, W&B, MLflow.
- `pipeline`: ``explain-attn train`` as one function, `train_to_file`.
- `graph`: the flat view of a model's graph (nested models opened) from
  which every layer can be read.
- `heads`: pre-softmax scores and probabilities of a classifier.
"""

from explain_attn.models.architectures import ARCHITECTURES, build_model
from explain_attn.models.saving import load_model, save_model

__all__ = ["ARCHITECTURES", "build_model", "load_model", "save_model"]
