"""The test zoo: models built the way public Keras code builds them.

Tiny inputs, ``weights=None``, nothing downloaded. Each builder returns an
uncompiled `keras.Model` with a softmax head over ``NUM_CLASSES`` classes.
"""

import keras
from keras import layers, ops

NUM_CLASSES = 3


def _head(inputs, features, name):
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="out")(
        pooled
    )
    return keras.Model(inputs, outputs, name=name)


def plain_cbam(x, prefix):
    """CBAM from plain layers: a channel gate and a spatial sigmoid conv."""
    channels = x.shape[-1]
    average = layers.GlobalAveragePooling2D(keepdims=True)(x)
    hidden = layers.Dense(max(channels // 4, 1), activation="relu")(average)
    weights = layers.Dense(channels, activation="sigmoid")(hidden)
    x = layers.Multiply(name=f"{prefix}_channel_mul")([x, weights])
    mean = ops.mean(x, axis=-1, keepdims=True)
    maximum = ops.max(x, axis=-1, keepdims=True)
    pooled = layers.Concatenate()([mean, maximum])
    gate = layers.Conv2D(
        1, 7, padding="same", activation="sigmoid", name=f"{prefix}_gate"
    )(pooled)
    return layers.Multiply(name=f"{prefix}_spatial_mul")([x, gate])


def mobilenet_v2_cbam(size=64):
    """MobileNetV2 nested, then a plain-layer CBAM after it."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3),
        weights=None,
        include_top=False,
        alpha=0.35,
    )
    x = backbone(inputs)
    return _head(inputs, plain_cbam(x, "cbam"), "mobilenet_v2_cbam")


def mobilenet_v3_small(size=32):
    """MobileNetV3Small: 9 SE gates of hard sigmoids built from operators."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(size, size, 3),
        weights=None,
        include_top=False,
        minimalistic=False,
        alpha=0.75,
    )
    return _head(inputs, backbone(inputs), "mobilenet_v3_small")


def efficientnet_b0(size=32):
    """EfficientNetB0: 16 squeeze-and-excitation gates (sigmoid)."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.EfficientNetB0(
        input_shape=(size, size, 3), weights=None, include_top=False
    )
    return _head(inputs, backbone(inputs), "efficientnet_b0")


def ops_cbam(x, prefix):
    """CBAM written with `keras.ops` in the graph."""
    average = ops.mean(x, axis=(1, 2), keepdims=True)
    maximum = ops.max(x, axis=(1, 2), keepdims=True)
    dense = layers.Dense(x.shape[-1], name=f"{prefix}_mlp")
    weights = ops.sigmoid(dense(average) + dense(maximum))
    x = x * weights
    pooled = ops.concatenate(
        [
            ops.mean(x, axis=-1, keepdims=True),
            ops.max(x, axis=-1, keepdims=True),
        ],
        axis=-1,
    )
    logits = layers.Conv2D(1, 7, padding="same", name=f"{prefix}_conv")(pooled)
    return x * ops.sigmoid(logits)


def resnet50_ops_cbam(size=32):
    """ResNet50 nested, then a CBAM written with keras.ops."""
    inputs = keras.Input((size, size, 3))
    backbone = keras.applications.ResNet50(
        input_shape=(size, size, 3), weights=None, include_top=False
    )
    features = backbone.get_layer("conv3_block4_out").output
    trunk = keras.Model(backbone.input, features, name="resnet50_trunk")
    return _head(inputs, ops_cbam(trunk(inputs), "cbam"), "resnet50_cbam")


def coordinate_attention(size=16):
    """A hand-written coordinate-attention block (Hou et al., 2021)."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    along_h = ops.mean(x, axis=2, keepdims=True)  # (H, 1, C)
    along_w = ops.mean(x, axis=1, keepdims=True)  # (1, W, C)
    joint = ops.concatenate(
        [along_h, ops.transpose(along_w, (0, 2, 1, 3))], axis=1
    )
    joint = layers.Conv2D(4, 1, activation="relu", name="ca_reduce")(joint)
    split_h, split_w = ops.split(joint, 2, axis=1)
    gate_h = layers.Conv2D(8, 1, activation="sigmoid", name="ca_h")(split_h)
    gate_w = layers.Conv2D(8, 1, activation="sigmoid", name="ca_w")(
        ops.transpose(split_w, (0, 2, 1, 3))
    )
    x = x * gate_h * gate_w
    return _head(inputs, x, "coordinate_attention")


def attention_unet_gate(size=16):
    """An Attention-U-Net-style additive gate (Oktay et al., 2018)."""
    inputs = keras.Input((size, size, 3))
    skip = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    coarse = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(
        skip
    )
    theta = layers.Conv2D(8, 1, strides=2)(skip)
    phi = layers.Conv2D(8, 1)(coarse)
    joint = layers.Activation("relu")(layers.Add()([theta, phi]))
    psi = layers.Conv2D(1, 1, activation="sigmoid", name="psi")(joint)
    gate = layers.UpSampling2D(2, interpolation="bilinear", name="psi_up")(psi)
    attended = layers.Multiply(name="ag_mul")([skip, gate])
    return _head(inputs, attended, "attention_unet_gate")


def hybrid_mha(size=16):
    """A small ConvNet with MultiHeadAttention over its positions."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(
        inputs
    )
    grid = x.shape[1]
    tokens = layers.Reshape((grid * grid, 8), name="tokens")(x)
    attended = layers.MultiHeadAttention(2, 4, name="mha")(tokens, tokens)
    x = layers.Reshape((grid, grid, 8))(attended + tokens)
    return _head(inputs, x, "hybrid_mha")


def mha_two_axes(size=8):
    """MultiHeadAttention over both spatial axes of a 4-D feature map
    (``attention_axes=(1, 2)``), as axial/2-D attention code writes it."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    attended = layers.MultiHeadAttention(
        2, 4, attention_axes=(1, 2), name="mha"
    )(x, x)
    return _head(inputs, layers.Add()([x, attended]), "mha_two_axes")


def rescaling_model(size=16):
    """A model trained on bytes: Rescaling(1/255) first."""
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    gate = layers.Conv2D(
        1, 3, padding="same", activation="sigmoid", name="gate"
    )(x)
    return _head(inputs, layers.Multiply()([x, gate]), "rescaling")


def grayscale_model(size=16):
    """A one-channel model with a spatial gate."""
    inputs = keras.Input((size, size, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    gate = layers.Conv2D(
        1, 3, padding="same", activation="sigmoid", name="gate"
    )(x)
    return _head(inputs, layers.Multiply()([x, gate]), "grayscale")


def bam_gate(size=16):
    """BAM-style ``x * (1 + sigmoid)`` with ops."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    logits = layers.Conv2D(1, 3, padding="same", name="bam_logits")(x)
    gate = 1.0 + ops.sigmoid(logits)
    return _head(inputs, x * gate, "bam")


def baseline(size=16, channels=3):
    """A plain ConvNet without attention, the report's reference."""
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(
        inputs
    )
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    return _head(inputs, x, "baseline")


def small_ops_cbam(size=16):
    """A tiny ConvNet with a CBAM written with keras.ops (fast to check)."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return _head(inputs, ops_cbam(x, "cbam"), "small_ops_cbam")


# Self-attention in every form, and attention inside layers (issue 24).


def _tokens(x):
    """``(B, H, W, C)`` to ``(B, H * W, C)``, row-major."""
    height, width, channels = x.shape[1:]
    return layers.Reshape((height * width, channels))(x)


def _stem(size, channels=8, strides=2):
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(
        channels,
        3,
        strides=strides,
        padding="same",
        activation="relu",
        name="stem",
    )(inputs)
    return inputs, x


def non_local_block(size=16):
    """A non-local block (Wang et al., 2018): ``softmax(θ φᵀ) g``."""
    inputs, x = _stem(size)
    theta = _tokens(layers.Conv2D(4, 1, name="theta")(x))
    phi = _tokens(layers.Conv2D(4, 1, name="phi")(x))
    g = _tokens(layers.Conv2D(4, 1, name="g")(x))
    weights = layers.Softmax(axis=-1, name="nl_softmax")(
        ops.matmul(theta, ops.transpose(phi, (0, 2, 1)))
    )
    y = ops.matmul(weights, g)
    y = layers.Reshape((*x.shape[1:3], 4))(y)
    x = x + layers.Conv2D(8, 1, name="nl_out")(y)
    return _head(inputs, x, "non_local_block")


def gcnet_block(size=16):
    """A global-context block (Cao et al., 2019): attention pooling."""
    inputs, x = _stem(size)
    mask = _tokens(layers.Conv2D(1, 1, name="gc_mask")(x))
    mask = ops.softmax(mask, axis=1)
    context = ops.matmul(ops.transpose(_tokens(x), (0, 2, 1)), mask)
    context = layers.Reshape((1, 1, 8))(context)
    context = layers.Conv2D(8, 1, name="gc_transform")(context)
    return _head(inputs, x + context, "gcnet_block")


@keras.saving.register_keras_serializable(package="explain_attn_zoo")
class AttentionAugmentedConv(keras.layers.Layer):
    """An attention-augmented convolution (Bello et al., 2019), its softmax
    inside one custom layer: ``concat(conv(x), softmax(q kᵀ/√d) v)``."""

    def __init__(self, filters=8, key_dim=4, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.key_dim = key_dim
        self.conv = layers.Conv2D(filters - key_dim, 3, padding="same")
        self.qkv = layers.Conv2D(3 * key_dim, 1)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.qkv.build(input_shape)

    def call(self, inputs):
        height, width = inputs.shape[1:3]
        qkv = ops.reshape(
            self.qkv(inputs), (-1, height * width, 3 * self.key_dim)
        )
        query, key, value = ops.split(qkv, 3, axis=-1)
        logits = ops.matmul(query, ops.transpose(key, (0, 2, 1)))
        weights = ops.softmax(logits / self.key_dim**0.5, axis=-1)
        attended = ops.reshape(
            ops.matmul(weights, value), (-1, height, width, self.key_dim)
        )
        return ops.concatenate([self.conv(inputs), attended], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "key_dim": self.key_dim})
        return config


def attention_augmented(size=16):
    """A ConvNet with an attention-augmented convolution layer."""
    inputs, x = _stem(size)
    x = AttentionAugmentedConv(8, 4, name="aa_conv")(x)
    return _head(inputs, x, "attention_augmented")


def mobilevit_block(size=16, patch=2):
    """A MobileViT block (Mehta & Rastegari, 2022): unfold into patches,
    MultiHeadAttention along the patch axis of a 4-D tensor, fold back."""
    inputs, x = _stem(size)
    height, width, channels = x.shape[1:]
    rows, cols = height // patch, width // patch
    unfolded = layers.Reshape((rows, patch, cols, patch, channels))(x)
    unfolded = ops.transpose(unfolded, (0, 2, 4, 1, 3, 5))
    unfolded = layers.Reshape((patch * patch, rows * cols, channels))(unfolded)
    attended = layers.MultiHeadAttention(
        2, 4, attention_axes=(2,), name="mvit_mha"
    )(unfolded, unfolded)
    folded = layers.Reshape((patch, patch, rows, cols, channels))(attended)
    folded = ops.transpose(folded, (0, 3, 1, 4, 2, 5))
    folded = layers.Reshape((height, width, channels))(folded)
    x = layers.Conv2D(8, 1, name="mvit_fuse")(layers.Concatenate()([x, folded]))
    return _head(inputs, x, "mobilevit_block")


def _encoder_block(tokens, name):
    """A pre-norm transformer block; returns tokens."""
    normed = layers.LayerNormalization(name=f"{name}_norm")(tokens)
    attended = layers.MultiHeadAttention(2, 4, name=f"{name}_mha")(
        normed, normed
    )
    tokens = tokens + attended
    hidden = layers.Dense(16, activation="gelu", name=f"{name}_mlp1")(tokens)
    return tokens + layers.Dense(tokens.shape[-1], name=f"{name}_mlp2")(hidden)


def cct_sequence_pooling(size=16):
    """A compact convolutional transformer (Hassani et al., 2021): one
    encoder block, then sequence pooling ``softmax(Dense(1)(x))ᵀ x``."""
    inputs, x = _stem(size)
    tokens = _encoder_block(_tokens(x), "cct")
    weights = ops.softmax(
        layers.Dense(1, name="cct_pool_score")(tokens), axis=1
    )
    pooled = ops.matmul(ops.transpose(weights, (0, 2, 1)), tokens)
    pooled = layers.Flatten()(pooled)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="out")(
        pooled
    )
    return keras.Model(inputs, outputs, name="cct_sequence_pooling")


def residual_attention(size=16):
    """A residual attention module (Wang et al., 2017): ``(1 + M) · T``
    with a full-shape sigmoid mask and the ``1 +`` in a ``Lambda``."""
    inputs, x = _stem(size)
    trunk = layers.Conv2D(
        8, 3, padding="same", activation="relu", name="trunk"
    )(x)
    mask = layers.MaxPooling2D(2)(x)
    mask = layers.Conv2D(
        8, 3, padding="same", activation="relu", name="mask_conv"
    )(mask)
    mask = layers.UpSampling2D(2, interpolation="bilinear")(mask)
    mask = layers.Conv2D(8, 1, activation="sigmoid", name="mask")(mask)
    one_plus = layers.Lambda(lambda t: 1.0 + t, name="one_plus")(mask)
    x = layers.Multiply(name="residual_mul")([trunk, one_plus])
    return _head(inputs, x, "residual_attention")


@keras.saving.register_keras_serializable(package="explain_attn_zoo")
class ClassToken(keras.layers.Layer):
    """Prepends a learned class token to ``(B, T, D)`` tokens."""

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer="random_normal"
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.broadcast_to(self.token, (batch, 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + 1, input_shape[2])


def vit_class_token(size=16, num_layers=2):
    """A ViT with a class token: 4 x 4 patches, two encoder blocks, the
    class token's output classified."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 4, strides=4, name="patches")(inputs)
    tokens = ClassToken(name="class_token")(_tokens(x))
    for index in range(num_layers):
        tokens = _encoder_block(tokens, f"block{index}")
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="out")(
        tokens[:, 0]
    )
    return keras.Model(inputs, outputs, name="vit_class_token")


@keras.saving.register_keras_serializable(package="explain_attn_zoo")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excitation written inside one subclassed layer."""

    def __init__(self, ratio=4, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape):
        channels = input_shape[-1]
        self.reduce = layers.Dense(
            max(channels // self.ratio, 1), activation="relu"
        )
        self.expand = layers.Dense(channels, activation="sigmoid")
        self.reduce.build((None, channels))
        self.expand.build((None, max(channels // self.ratio, 1)))

    def call(self, inputs):
        squeezed = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return inputs * self.expand(self.reduce(squeezed))

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config


def subclassed_se(size=16):
    """A ConvNet whose SE block is a subclassed layer."""
    inputs, x = _stem(size)
    x = SqueezeExcite(4, name="se_block")(x)
    return _head(inputs, x, "subclassed_se")


def keras_attention_layers(size=16):
    """``keras.layers.Attention`` and ``AdditiveAttention`` over positions."""
    inputs, x = _stem(size)
    tokens = _tokens(x)
    tokens = tokens + layers.Attention(name="dot_attention")([tokens, tokens])
    tokens = tokens + layers.AdditiveAttention(name="additive_attention")(
        [tokens, tokens]
    )
    x = layers.Reshape(x.shape[1:])(tokens)
    return _head(inputs, x, "keras_attention_layers")


# keras-hub backbones from configs, random weights, tiny (nothing
# downloaded). Each is wrapped with a classification head. Those whose
# paths tests name are named, not numbered by how many were built before.


def _hub_classifier(backbone, name):
    inputs = keras.Input((32, 32, 3))
    # DINOv2 takes {"images": ...}, DINOv3 {"pixel_values": ...}; the
    # others a tensor.
    named = isinstance(backbone.input, dict)
    features = backbone(
        {key: inputs for key in backbone.input} if named else inputs
    )
    if isinstance(features, dict):  # HGNetV2: its stages' outputs.
        features = list(features.values())[-1]
    if len(features.shape) == 4:
        return _head(inputs, features, name)
    pooled = features  # SigLIP's vision encoder pools its tokens itself.
    if len(features.shape) == 3:
        pooled = layers.GlobalAveragePooling1D(name="pool")(features)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="out")(
        pooled
    )
    return keras.Model(inputs, outputs, name=name)


def hub_mobilenet():
    """keras-hub MobileNetBackbone (V3-style): SE inside its blocks."""
    import keras_hub

    backbone = keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[1], [4, 6]],
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[8], [8, 16]],
        stackwise_kernel_size=[[3], [3, 5]],
        stackwise_num_strides=[[2], [2, 1]],
        stackwise_se_ratio=[[0.25], [None, 0.25]],
        stackwise_activation=[["relu"], ["relu", "hard_swish"]],
        stackwise_padding=[[1], [1, 2]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        image_shape=(32, 32, 3),
        input_num_filters=8,
    )
    return _hub_classifier(backbone, "hub_mobilenet")


def hub_efficientnet():
    """keras-hub EfficientNetBackbone (B0-style blocks): SE gates."""
    import keras_hub

    backbone = keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[0.25] * 2,
        stackwise_depth_coefficients=[1.0] * 2,
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 2],
        stackwise_input_filters=[32, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 6],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"],
        input_shape=(32, 32, 3),
        num_features=64,
    )
    return _hub_classifier(backbone, "hub_efficientnet")


def hub_vit():
    """keras-hub ViTBackbone: class token, MultiHeadAttention in blocks."""
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    )
    return _hub_classifier(backbone, "hub_vit")


def hub_dinov2():
    """keras-hub DINOV2Backbone: a class token and two register tokens."""
    import keras_hub

    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        num_register_tokens=2,
        image_shape=(32, 32, 3),
        position_embedding_shape=(32, 32, 3),
    )
    return _hub_classifier(backbone, "hub_dinov2")


def hub_deit():
    """keras-hub DeiTBackbone: a class and a distillation token; its
    encoder blocks return ``(y, None)``."""
    import keras_hub

    backbone = keras_hub.models.DeiTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        name="dei_t_backbone",
    )
    return _hub_classifier(backbone, "hub_deit")


def hub_swin():
    """keras-hub SwinTransformerBackbone (keras-hub >= 0.26): windowed
    attention written by hand (softmax, matmul) in each block. Stage 0
    runs on 4 windows of its 8 x 8 tokens (its second block's windows
    shifted by 2), stage 1 on one 4 x 4 window."""
    import keras_hub

    backbone = keras_hub.models.SwinTransformerBackbone(
        image_shape=(32, 32, 3),
        embed_dim=8,
        depths=[2, 1],
        num_heads=[2, 2],
        window_size=4,
        patch_size=4,
        drop_path=0.0,
        # Named, so that the paths do not depend on how many were built
        # before in the process (Keras numbers generated names).
        name="swin_transformer_backbone",
    )
    return _hub_classifier(backbone, "hub_swin")


def hub_mit():
    """keras-hub MiTBackbone (SegFormer's encoder): attention written by
    hand, keys spatially reduced (stage 0: 8 x 8 queries, 4 x 4 keys)."""
    import keras_hub

    backbone = keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        image_shape=(32, 32, 3),
        hidden_dims=[8, 16],
        name="mi_t_backbone",
    )
    return _hub_classifier(backbone, "hub_mit")


def hub_vitdet():
    """keras-hub ViTDetBackbone (SAM's image encoder): 8 x 8 tokens; block
    0 attends within 4 windows of 4 x 4, block 1 globally; relative
    position terms added to the logits; heads folded into the batch axis
    (``(B · windows · heads, 16, 16)``)."""
    import keras_hub

    backbone = keras_hub.models.ViTDetBackbone(
        hidden_size=16,
        num_layers=2,
        intermediate_dim=32,
        num_heads=2,
        global_attention_layer_indices=[1],
        image_shape=(32, 32, 3),
        patch_size=4,
        num_output_channels=8,
        window_size=4,
        name="vi_t_det_backbone",
    )
    return _hub_classifier(backbone, "hub_vitdet")


def hub_dinov3():
    """keras-hub DINOV3Backbone: a class and 2 register tokens, rotary
    position embeddings, attention by the fused
    ``ops.nn.dot_product_attention``."""
    import keras_hub

    backbone = keras_hub.models.DINOV3Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        num_register_tokens=2,
        image_shape=(32, 32, 3),
        name="dinov3_backbone",
    )
    return _hub_classifier(backbone, "hub_dinov3")


def hub_mobilenetv5():
    """keras-hub MobileNetV5Backbone (Gemma 3n's vision tower), tiny: an
    edge residual, a universal inverted residual and a mobile multi-query
    attention block (8 x 8 queries, keys and values strided to 4 x 4).
    keras-hub 0.32 cannot build its SE blocks (se_ratio > 0): none."""
    import keras_hub

    def per_block(first, second, third):
        return [[first], [second, third]]

    backbone = keras_hub.models.MobileNetV5Backbone(
        stackwise_block_types=per_block("er", "uir", "mqa"),
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=per_block(16, 16, 16),
        stackwise_strides=per_block(2, 1, 1),
        stackwise_act_layers=per_block("relu", "relu", "relu"),
        stackwise_exp_ratios=per_block(2.0, 2.0, 0.0),
        stackwise_se_ratios=per_block(0.0, 0.0, 0.0),
        stackwise_dw_kernel_sizes=per_block(0, 3, 3),
        stackwise_dw_start_kernel_sizes=per_block(0, 3, 0),
        stackwise_dw_end_kernel_sizes=per_block(0, 0, 0),
        stackwise_exp_kernel_sizes=per_block(3, 0, 0),
        stackwise_pw_kernel_sizes=per_block(1, 0, 0),
        stackwise_num_heads=per_block(0, 0, 2),
        stackwise_key_dims=per_block(0, 0, 8),
        stackwise_value_dims=per_block(0, 0, 8),
        stackwise_kv_strides=per_block(0, 0, 2),
        stackwise_use_cpe=per_block(False, False, False),
        stem_size=8,
        use_msfa=False,
        image_shape=(32, 32, 3),
        name="mobile_net_v5_backbone",
    )
    return _hub_classifier(backbone, "hub_mobilenetv5")


def hub_clip_vision():
    """keras-hub CLIPVisionEncoder (CLIPBackbone's image tower): a class
    token, MultiHeadAttention in its encoder layers."""
    import keras_hub

    backbone = keras_hub.models.CLIPVisionEncoder(
        patch_size=8,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
        name="clip_vision_encoder",
    )
    return _hub_classifier(backbone, "hub_clip_vision")


def hub_siglip_vision():
    """keras-hub SigLIPVisionEncoder: no class token; its head pools the
    tokens with a learned probe query (MultiHeadAttention, one query)."""
    import keras_hub

    backbone = keras_hub.models.SigLIPVisionEncoder(
        patch_size=8,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
        name="sig_lip_vision_encoder",
    )
    return _hub_classifier(backbone, "hub_siglip_vision")


def hub_depth_anything():
    """keras-hub DepthAnythingBackbone: a DINOv2 encoder (class token,
    MultiHeadAttention), a convolutional neck and depth head."""
    import keras_hub

    encoder = keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
        position_embedding_shape=(32, 32, 3),
    )
    backbone = keras_hub.models.DepthAnythingBackbone(
        image_encoder=encoder,
        reassemble_factors=[2, 1],
        neck_hidden_dims=[8, 16],
        fusion_hidden_dim=8,
        head_hidden_dim=8,
        head_in_index=-1,
        feature_keys=["stage1", "stage2"],
        name="depth_anything_backbone",
    )
    return _hub_classifier(backbone, "hub_depth_anything")


def hub_hgnetv2():
    """keras-hub HGNetV2Backbone: convolutions only (no gate, no
    attention)."""
    import keras_hub

    backbone = keras_hub.models.HGNetV2Backbone(
        depths=[1, 1],
        embedding_size=8,
        hidden_sizes=[16, 32],
        stem_channels=[3, 8, 8],
        hidden_act="relu",
        use_learnable_affine_block=False,
        stackwise_stage_filters=[[8, 8, 16, 1, 2, 3], [16, 8, 32, 1, 2, 3]],
        apply_downsample=[False, True],
        use_lightweight_conv_block=[False, True],
        image_shape=(32, 32, 3),
        name="hgnetv2_backbone",
    )
    return _hub_classifier(backbone, "hub_hgnetv2")


def _public_gate(skip, gating, name):
    """An additive gate as public Attention U-Net code writes it."""
    theta = layers.Conv2D(4, 1, strides=2)(skip)
    phi = layers.Conv2D(4, 1)(gating)
    joint = layers.Activation("relu")(layers.Add()([theta, phi]))
    psi = layers.Conv2D(1, 1, activation="sigmoid")(joint)
    gate = layers.UpSampling2D(2, interpolation="bilinear")(psi)
    return layers.Multiply(name=name)([skip, gate])


def public_unet(size=32, num_outputs=5, *, gates=True, sigmoid=False):
    """A functional one-level U-Net, with or without an additive gate.

    ``sigmoid=True`` ends in a 1-channel Conv2D then Activation("sigmoid")
    (foreground against background); else a softmax Conv2D over
    ``num_outputs`` pixel classes.
    """
    inputs = keras.Input((size, size, 3))
    skip = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    down = layers.MaxPooling2D(2)(skip)
    bottom = layers.Conv2D(
        8, 3, padding="same", activation="relu", name="bottom"
    )(down)
    if gates:
        skip = _public_gate(skip, bottom, "attention_gate")
    up = layers.UpSampling2D(2)(bottom)
    x = layers.Concatenate()([up, skip])
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="dec")(x)
    if sigmoid:
        x = layers.Conv2D(1, 1, name="logits")(x)
        outputs = layers.Activation("sigmoid", name="mask")(x)
    else:
        outputs = layers.Conv2D(
            num_outputs, 1, activation="softmax", name="mask"
        )(x)
    name = ("attention_" if gates else "") + "unet"
    return keras.Model(inputs, outputs, name=name)


class GatedNet(keras.Model):
    """A subclassed model (its ``call`` is Python, no functional graph)
    with a spatial gate: ``features * sigmoid(conv(features))``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = layers.Conv2D(8, 3, padding="same", activation="relu")
        self.gate = layers.Conv2D(1, 1, activation="sigmoid")
        self.pool = layers.GlobalAveragePooling2D()
        self.classify = layers.Dense(NUM_CLASSES, activation="softmax")

    def call(self, inputs):
        features = self.stem(inputs)
        return self.classify(self.pool(features * self.gate(features)))


def subclassed_model(size=16):
    """`GatedNet`, built by one call on a batch of ``size`` x ``size``."""
    model = GatedNet(name="gated_net")
    model(ops.zeros((1, size, size, 3)))
    return model
