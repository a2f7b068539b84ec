"""Discovery time on keras-hub backbones, tracing included.

`explain_attn.attention.discovery.discover_modules` on a model that wraps a
keras-hub backbone built from its config (random weights, nothing
downloaded). Discovery flattens the model's graph once, opening each
subclassed layer by tracing its call and checking the trace against the
layer on a batch of two (`explain_attn.tracing`), then matches the
attention kinds. Each backbone runs in a fresh process (as a user meets
it); the figures are the wall time of the graph (tracing) and of
discovery, once per backbone, and the modules found.

    python -m benchmarks.bench_discovery
    python -m benchmarks.bench_discovery --backbones vit_base
"""

import argparse
import json
import sys
import time

from benchmarks.common import Row, run_child

__all__ = ["BACKBONES", "run"]

BACKBONES = {
    # ViT-B/16 at 224 x 224: 12 encoder layers, 86 M parameters.
    "vit_base": dict(
        image_shape=(224, 224, 3),
        patch_size=16,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        mlp_dim=3072,
    ),
    # ViT-S/16.
    "vit_small": dict(
        image_shape=(224, 224, 3),
        patch_size=16,
        num_layers=12,
        num_heads=6,
        hidden_dim=384,
        mlp_dim=1536,
    ),
    # Swin-T at 224 x 224: 12 blocks of windowed attention written by hand,
    # every call reading the batch size (ops.shape(x)[0]).
    "swin_tiny": dict(
        image_shape=(224, 224, 3),
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        patch_size=4,
        drop_path=0.0,
    ),
    # DeiT-Ti/16: a class and a distillation token; blocks return
    # (y, None).
    "deit_tiny": dict(
        image_shape=(224, 224, 3),
        patch_size=16,
        num_layers=12,
        num_heads=3,
        hidden_dim=192,
        intermediate_dim=768,
    ),
    # SAM's ViT-B image encoder (ViTDetBackbone) at 512 x 512: 32 x 32
    # tokens, windows of 14 (padded to 42: 9 windows per image), global
    # attention in blocks 2, 5, 8 and 11, heads folded into the batch.
    "vitdet_base": dict(
        hidden_size=768,
        num_layers=12,
        intermediate_dim=3072,
        num_heads=12,
        global_attention_layer_indices=[2, 5, 8, 11],
        image_shape=(512, 512, 3),
        patch_size=16,
        num_output_channels=256,
        window_size=14,
    ),
    # DINOv3 ViT-S/16: a class and 4 register tokens, rotary positions,
    # the fused dot_product_attention.
    "dinov3_small": dict(
        patch_size=16,
        num_layers=12,
        hidden_dim=384,
        num_heads=6,
        intermediate_dim=1536,
        num_register_tokens=4,
        image_shape=(224, 224, 3),
    ),
}
"""keras-hub backbone configurations: ViTBackbone (the largest image
backbone we build: attention in every encoder layer, inside subclassed
layers) and SwinTransformerBackbone (keras-hub >= 0.26)."""

_CLASSES = {
    "swin_tiny": "SwinTransformerBackbone",
    "deit_tiny": "DeiTBackbone",
    "vitdet_base": "ViTDetBackbone",
    "dinov3_small": "DINOV3Backbone",
}
"""The keras-hub class of a configuration other than ViTBackbone."""


def _child(name):
    """Body of a measuring process: prints one JSON line."""
    import collections

    import keras
    import keras_hub

    from explain_attn.attention.discovery import discover_modules
    from explain_attn.graph import model_state

    start = time.perf_counter()
    backbone_class = getattr(
        keras_hub.models, _CLASSES.get(name, "ViTBackbone")
    )
    backbone = backbone_class(**BACKBONES[name])
    inputs = keras.Input(BACKBONES[name]["image_shape"])
    if isinstance(backbone.input, dict):  # DINOv3: {"pixel_values": ...}
        features = backbone({key: inputs for key in backbone.input})
    else:
        features = backbone(inputs)
    pooled = (
        keras.layers.GlobalAveragePooling1D()(features)
        if len(features.shape) == 3
        else keras.layers.GlobalAveragePooling2D()(features)
    )
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    built = time.perf_counter() - start
    start = time.perf_counter()
    # One state: discovery reads the graph built above (given the model,
    # it would build its own again).
    state = model_state(model)
    graph = state.graph
    flattened = time.perf_counter() - start
    start = time.perf_counter()
    modules = discover_modules(state)
    matched = time.perf_counter() - start
    kinds = collections.Counter(m.kind.name for m in modules)
    print(
        json.dumps(
            {
                "parameters": model.count_params(),
                "build": built,
                "graph": flattened,
                "discovery": matched,
                "taps": len(graph.taps),
                "untraced": len(graph.untraced),
                "kinds": dict(kinds),
            }
        )
    )


def run(backbones=tuple(BACKBONES)):
    """Returns a `Row` per backbone and figure."""
    rows = []
    for name in backbones:
        found = run_child(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_discovery",
                "--child",
                name,
            ]
        )
        kinds = ", ".join(f"{n} {k}" for k, n in found["kinds"].items())
        note = (
            f"{found['parameters'] / 1e6:.1f} M parameters, "
            f"{found['taps']} calls in the flat graph, "
            f"{found['untraced']} layer(s) kept opaque; found: {kinds}"
        )
        for figure in ("graph", "discovery"):
            seconds = found[figure]
            rows.append(
                Row(
                    "discovery",
                    name,
                    f"{figure} (s)",
                    seconds,
                    seconds,
                    seconds,
                    "s",
                    "",
                    None,
                    note,
                )
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    options = parser.parse_args(argv)
    if options.child:
        _child(options.child)
        return
    for row in run(options.backbones):
        print(row)


if __name__ == "__main__":
    sys.exit(main())
