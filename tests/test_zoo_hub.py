"""More keras-hub backbones in the zoo: SAM's ViTDet, DINOv3, Gemma 3n's
MobileNetV5, CLIP's and SigLIP's vision encoders, Depth Anything and
HGNetV2 (no attention), at tiny sizes from configs (`zoo_models`).

Each map checked here is computed again independently: in NumPy from the
layer's weights (its own projections, its position terms), the windows
cut and put back, heads and queries averaged by hand.
"""

import collections
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from explain_attn.attention.discovery import discover_modules
from explain_attn.explanations.attention import attention_maps
from explain_attn.graph import model_state

sys.path.insert(0, str(Path(__file__).parent))
import zoo_models  # noqa: E402

EXPECTED = {
    "hub_vitdet": {"window": 1, "dot_product": 1},
    "hub_dinov3": {"dot_product_attention": 2, "rollout": 1},
    "hub_mobilenetv5": {"dot_product": 1},
    "hub_clip_vision": {"mha": 2, "rollout": 1},
    "hub_siglip_vision": {"mha": 3, "rollout": 1},
    "hub_depth_anything": {"mha": 2, "rollout": 1},
    "hub_hgnetv2": {},
}
"""Modules by kind, counted from the configs: one attention per encoder
block (ViTDet: block 0 windowed, block 1 global; SigLIP: its two blocks
and its pooling head, which rollout leaves out), one multi-query
attention block in MobileNetV5, none in HGNetV2."""

OPAQUE = {
    "hub_depth_anything": {
        "depth_anything_backbone/neck/fusion_stage_0",
        "depth_anything_backbone/neck/fusion_stage_1",
        "depth_anything_backbone/head",
    },
    "hub_dinov3": {"dinov3_backbone/dinov3_backbone_rope_embedding"},
}
"""Layers kept opaque, none with attention inside: Depth Anything's
fusion stages and head resize with ``tf.compat.v1.image.resize``, a
TensorFlow function that refuses symbolic tensors; DINOv3's rotary
embedding computes its tables from the image size only (no tensor
computed from its input)."""

SHAPES = {
    "hub_vitdet": {(8, 8)},
    "hub_dinov3": {(4, 4)},
    "hub_mobilenetv5": {(4, 4)},  # The keys' grid (kv stride 2).
    "hub_clip_vision": {(4, 4)},
    "hub_siglip_vision": {(4, 4)},
    "hub_depth_anything": {(4, 4)},
}


CLASSES = {
    "hub_vitdet": "ViTDetBackbone",
    "hub_dinov3": "DINOV3Backbone",
    "hub_mobilenetv5": "MobileNetV5Backbone",
    "hub_clip_vision": "CLIPVisionEncoder",
    "hub_siglip_vision": "SigLIPVisionEncoder",
    "hub_depth_anything": "DepthAnythingBackbone",
    "hub_hgnetv2": "HGNetV2Backbone",
}


def _get(table, name):
    """``table[name]``, or a skip where this keras-hub lacks the class."""
    if name not in table:
        pytest.skip(f"keras_hub.models.{CLASSES[name]} does not exist here")
    return table[name]


def _softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


@pytest.fixture(scope="module")
def hub():
    keras_hub = pytest.importorskip(
        "keras_hub",
        reason="keras-hub is an optional test dependency (pip install .[test])",
    )
    # All in keras-hub 0.25.1, the lowest tested; a version without one
    # skips its tests (`_get`).
    present = [n for n in EXPECTED if hasattr(keras_hub.models, CLASSES[n])]
    with warnings.catch_warnings():
        # keras-hub's MobileNetV5 serialises a lambda activation.
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
        models = {name: getattr(zoo_models, name)() for name in present}
    images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    rng = np.random.default_rng(1)
    vitdet = models.get("hub_vitdet")
    for weight in [] if vitdet is None else vitdet.weights:
        # ViTDet's relative position tables are zeros when built: made to
        # matter. Set before tracing: gathered with ``ops.take`` from the
        # weight alone, they are read when the graph is traced.
        if "rel_pos" in weight.path:
            weight.assign(rng.normal(size=weight.shape).astype("float32"))
    # Each model's graph is traced once, for every test of the module.
    states = {name: model_state(model) for name, model in models.items()}
    return models, images, states


@pytest.mark.parametrize("name", list(EXPECTED))
def test_modules_by_kind_and_maps(hub, name):
    _, images, states = hub
    state = _get(states, name)
    modules = discover_modules(state)
    found = collections.Counter(m.kind.name for m in modules)
    assert dict(found) == EXPECTED[name]
    assert set(state.graph.untraced) == OPAQUE.get(name, set())
    if not modules:
        return
    maps = attention_maps(state, images)
    assert {maps[m.path].shape[1:] for m in modules} == SHAPES[name]
    for module in modules:
        values = maps[module.path]
        assert values.shape[0] == 2
        assert np.all((values >= 0) & (values <= 1))


VITDET = "vi_t_det_backbone"


def _vitdet_received(block, tokens):
    """Attention received per position of a ViTDet block, from its own
    projections and relative position terms: windows cut, softmax, heads
    and queries averaged, windows put back, in NumPy."""
    normed = _numpy(block.layer_norm1(tokens))
    batch, height, width, channels = normed.shape
    size = block.window_size or height
    rows, columns = height // size, width // size
    windows = normed.reshape(batch, rows, size, columns, size, channels)
    windows = windows.transpose(0, 1, 3, 2, 4, 5).reshape(
        -1, size, size, channels
    )
    attention = block.attention
    heads, key_dim = attention.num_heads, attention.key_dim
    qkv = _numpy(attention.qkv(windows.astype(np.float32)))
    qkv = qkv.reshape(-1, size * size, 3, heads, key_dim)
    queries, keys = qkv[:, :, 0], qkv[:, :, 1]  # (n, tokens, heads, d)
    logits = np.einsum("nqhd,nkhd->nhqk", queries * attention.scale, keys)
    # Decomposed relative positions: q · R_h[i - i'] + q · R_w[j - j'].
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :] + size - 1
    along_h = _numpy(attention.add_decomposed_relative_pe.rel_pos_h)[offsets]
    along_w = _numpy(attention.add_decomposed_relative_pe.rel_pos_w)[offsets]
    grid = queries.reshape(-1, size, size, heads, key_dim)
    terms_h = np.einsum("nijhd,ikd->nhijk", grid, along_h)
    terms_w = np.einsum("nijhd,jld->nhijl", grid, along_w)
    relative = terms_h[..., :, None] + terms_w[..., None, :]
    logits = logits + relative.reshape(logits.shape)
    received = _softmax(logits).mean(axis=(1, 2))  # (n windows, tokens)
    received = received.reshape(batch, rows, columns, size, size)
    return received.transpose(0, 1, 3, 2, 4).reshape(batch, height, width)


def test_vitdet_windows_and_relative_positions_against_numpy(hub):
    models, images, states = hub
    model, state = _get(models, "hub_vitdet"), _get(states, "hub_vitdet")
    backbone = model.get_layer(VITDET)
    assert all(
        np.any(_numpy(w) != 0) for w in backbone.weights if "rel_pos" in w.path
    )
    modules = {m.path: m for m in discover_modules(state)}
    maps = attention_maps(state, images)
    blocks = [b for b in backbone.layers if hasattr(b, "window_partitioning")]
    for block, kind in zip(blocks, ("window", "dot_product"), strict=True):
        path = f"{VITDET}/{block.name}/attention/softmax"
        assert modules[path].kind.name == kind
        tokens = keras.Model(backbone.input, block.input)(images)
        expected = _vitdet_received(block, tokens)
        np.testing.assert_allclose(maps[path], expected, rtol=1e-4, atol=1e-6)
    # Each 4 x 4 window's values average to 1 / 16 (normalised per window).
    windowed = maps[f"{VITDET}/{blocks[0].name}/attention/softmax"]
    means = windowed.reshape(2, 2, 4, 2, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(means, 1 / 16, rtol=1e-5)


def _rotated(values, cos, sin, prefix):
    """DINOv3's rotary embedding, on the patch tokens only."""
    half = values.shape[-1] // 2
    patches = values[:, prefix:]
    turned = np.concatenate([-patches[..., half:], patches[..., :half]], -1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return np.concatenate(
        [values[:, :prefix], patches * cos + turned * sin], axis=1
    )


def test_dinov3_fused_attention_and_rollout_against_numpy(hub):
    """DINOv3 attends with ``ops.nn.dot_product_attention`` after rotary
    position embeddings, a class and 2 register tokens first: the class
    token's attention to the 16 patches, and the rollout."""
    models, images, states = hub
    model = _get(models, "hub_dinov3")
    maps = attention_maps(_get(states, "hub_dinov3"), images)
    backbone = model.get_layer("dinov3_backbone")
    tokens = backbone.embeddings(images)
    cos, sin = [_numpy(t) for t in backbone.rope_embedding(images)]
    rollout, prefix = np.eye(19), 3
    for index, layer in enumerate(backbone.encoder.layers):
        attention = layer.attention
        normed = layer.norm1(tokens)
        heads = attention.num_heads

        def split(dense, normed=normed, heads=heads):
            values = _numpy(dense(normed))
            return values.reshape(2, 19, heads, -1)

        queries = _rotated(split(attention.query_dense), cos, sin, prefix)
        keys = _rotated(split(attention.key_dense), cos, sin, prefix)
        logits = np.einsum("bqhd,bkhd->bhqk", queries, keys) * attention.scale
        scores = _softmax(logits)  # (2, heads, 19, 19)
        path = f"dinov3_backbone/{backbone.encoder.name}/layers_{index}/"
        path += "attention/"
        np.testing.assert_allclose(
            maps[f"{path}dot_product_attention"],
            scores[:, :, 0, prefix:].mean(axis=1).reshape(2, 4, 4),
            rtol=1e-4,
            atol=1e-6,
        )
        mixed = 0.5 * scores.mean(axis=1) + 0.5 * np.eye(19)
        rollout = mixed / mixed.sum(axis=-1, keepdims=True) @ rollout
        tokens = layer(
            tokens,
            position_embeddings=(cos, sin),
            num_prefix_tokens=prefix,
        )
    np.testing.assert_allclose(
        maps["attention_rollout"],
        rollout[:, 0, prefix:].reshape(2, 4, 4),
        rtol=1e-4,
        atol=1e-6,
    )


def test_mobilenetv5_multi_query_attention_against_numpy(hub):
    """Gemma 3n's mobile multi-query attention: 2 query heads share one
    key, strided to 4 x 4 positions for 8 x 8 queries."""
    models, images, states = hub
    model = _get(models, "hub_mobilenetv5")
    maps = attention_maps(_get(states, "hub_mobilenetv5"), images)
    backbone = model.get_layer("mobile_net_v5_backbone")
    block = next(b for b in backbone.layers if hasattr(b, "attn"))
    path = f"mobile_net_v5_backbone/{block.name}/attn/softmax"
    attention = block.attn
    inputs = keras.Model(backbone.input, block.input)(images)
    normed = block.norm(inputs)

    def run(parts):
        values = normed
        for part in parts:
            values = part(values)
        return _numpy(values)

    queries = run(attention.query_layers)  # (2, 8, 8, heads * d)
    keys = run(attention.key_layers)  # (2, 4, 4, d)
    heads, key_dim = attention.num_heads, attention.key_dim
    queries = queries.reshape(2, 64, heads, key_dim) * attention.scale
    logits = np.einsum("bqhd,bkd->bhqk", queries, keys.reshape(2, 16, -1))
    expected = _softmax(logits).mean(axis=(1, 2)).reshape(2, 4, 4)
    np.testing.assert_allclose(maps[path], expected, rtol=1e-4, atol=1e-6)


def test_siglip_pooling_head_is_read_and_left_out_of_the_rollout(hub):
    """SigLIP has no class token: its head's probe query attends to the
    16 patches (the map is its attention); rollout multiplies the two
    encoder blocks only."""
    models, images, states = hub
    model, state = (
        _get(models, "hub_siglip_vision"),
        _get(states, "hub_siglip_vision"),
    )
    rollout = discover_modules(state)[-1]
    assert rollout.found_by == "attention rollout over 2 layers"
    maps = attention_maps(state, images)
    backbone = model.get_layer("sig_lip_vision_encoder")
    head = backbone.head
    tokens = keras.Model(backbone.input, head.input)({"images": images})
    probe = np.repeat(_numpy(head.probe), 2, axis=0).astype(np.float32)
    _, scores = head.attention(
        probe, tokens, tokens, return_attention_scores=True
    )
    np.testing.assert_allclose(
        maps[f"sig_lip_vision_encoder/{head.name}/attention"],
        _numpy(scores)[:, :, 0].mean(axis=1).reshape(2, 4, 4),
        rtol=1e-4,
        atol=1e-6,
    )


def test_clip_class_token_attention_against_keras_own_scores(hub):
    """CLIP's class token's attention to the 16 patches, per block, from
    Keras' own ``MultiHeadAttention`` scores."""
    models, images, states = hub
    model = _get(models, "hub_clip_vision")
    maps = attention_maps(_get(states, "hub_clip_vision"), images)
    backbone = model.get_layer("clip_vision_encoder")
    tokens = backbone.pre_layer_norm(backbone.embedding(images))
    for block in backbone.encoder_layers:
        normed = block.layer_norm_1(tokens)
        _, scores = block.attention(
            normed, normed, return_attention_scores=True
        )
        np.testing.assert_allclose(
            maps[f"clip_vision_encoder/{block.name}/attention"],
            _numpy(scores)[:, :, 0, 1:].mean(axis=1).reshape(2, 4, 4),
            rtol=1e-4,
            atol=1e-6,
        )
        tokens = block(tokens)
