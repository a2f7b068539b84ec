"""Seg-Grad-CAM: Grad-CAM for segmentation models (Vinogradova et al., 2020).

A segmentation model scores every pixel; the score Seg-Grad-CAM explains is
the sum of class ``c``'s logits over a region ``M``,
``y_c = sum_{(u, v) in M} z_c[u, v]``, and the map is Grad-CAM's for that
score (channel weights: the spatial mean of ``dy_c / dA``). The region is
the model's predicted mask of ``c`` by default (pixels whose arg-max is
``c``; for a single sigmoid output, pixels whose logit is above 0), or a
given mask such as the true one (`SegGradCAM.batch` with ``regions``).

Decided cases: an empty region gives the score 0 and an all-zero map (it
explains nothing). ``class_index=-1`` (the "predicted" class) is, for a
softmax over ``K >= 2`` classes, the class other than 0 (class 0 is the
background by convention) with the largest predicted area, class 1 when
none is predicted; for a single sigmoid output it is 0, the foreground.
"""

import keras
import tensorflow as tf

from explain_attn.devices import graph_function
from explain_attn.explanations.cam import GradCAM
from explain_attn.explanations.methods import register_cam
from explain_attn.graph import model_state
from explain_attn.models.lookup import cam_candidates
from explain_attn.models.task import pixel_score_head

__all__ = ["SegGradCAM", "default_decoder_layer", "region_classes"]


def default_decoder_layer(model):
    """The default Seg-Grad-CAM layer: the decoder's last coarse layer.

    Among the Grad-CAM candidates with several channels (`explain_attn.
    explanations.lookup.cam_candidates`) other than the output and the
    logits: the last one fed to an up-sampling layer (``UpSampling2D``,
    ``Conv2DTranspose``; in a U-Net, the decoder's layer before its final
    up-sampling), else the last one smaller than the output, else the last
    one. At the output's resolution, right before a 1×1 logits layer,
    Grad-CAM's spatially averaged gradients make the map the class's own
    logit map (shifted, then cut at 0): with a softmax, whose logits are
    only defined up to a shift, it was all zeros on every image of the
    demo's U-Net. Choose another with ``--cam-layer`` (see ``explain-attn
    layers``).

    Raises:
        ValueError: If the model is no segmentation model or has no such
            layer.
    """
    state = model_state(model)
    model = state.model
    graph = state.graph
    head, _ = pixel_score_head(state)
    num_classes = graph.outputs[0].shape[-1]
    excluded = {graph.outputs[0].name}
    if head.shape[-1] == num_classes:
        excluded.add(head.name)
    candidates = [
        path
        for path in cam_candidates(state)
        if graph.taps[path].output.name not in excluded
        and graph.taps[path].output.shape[-1] != 1
    ]
    if not candidates:
        raise ValueError(
            f"Model {model.name!r} has no decoder layer with a 4-D output of "
            "several channels before its logits, so Seg-Grad-CAM has no "
            "feature map to weigh. Give one with --cam-layer."
        )
    producers = {id(graph.taps[path].output): path for path in candidates}
    upsampled = [
        producers[id(tap.input)]
        for tap in graph.taps.values()
        if isinstance(tap.layer, _UPSAMPLING) and id(tap.input) in producers
    ]
    coarser = [
        path
        for path in candidates
        if _pixels(graph.taps[path].output) < _pixels(graph.outputs[0])
    ]
    return (upsampled or coarser or candidates)[-1]


_UPSAMPLING = (keras.layers.UpSampling2D, keras.layers.Conv2DTranspose)


def _pixels(tensor):
    height, width = tensor.shape[1:3]
    return None if height is None or width is None else height * width


def region_classes(logits, classes):
    """``(B,)`` classes with -1 replaced as the module says.

    Args:
        logits: ``(B, H, W, K)`` per-pixel scores.
        classes: ``(B,)`` int32; -1 for the predicted class.
    """
    num_classes = logits.shape[-1]
    if num_classes == 1:
        return tf.where(classes < 0, 0, classes)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    areas = tf.reduce_sum(tf.one_hot(predicted, num_classes), axis=(1, 2))
    largest = tf.argmax(areas[:, 1:], axis=-1, output_type=tf.int32) + 1
    return tf.where(classes < 0, largest, classes)


def predicted_region(logits, classes):
    """``(B, H, W)`` float32: 1 where the model predicts ``classes``."""
    if logits.shape[-1] == 1:
        return tf.cast(logits[..., 0] > 0, tf.float32)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.cast(predicted == classes[:, None, None], tf.float32)


@register_cam
class SegGradCAM(GradCAM):
    """Seg-Grad-CAM (Vinogradova et al., 2020); see the module.

    Args:
        model: A segmentation model (output ``(N, H, W, K)``).
        layer: Name, path or pattern of one 4-D layer; ``None`` for
            `default_decoder_layer`.
    """

    name = "seg_grad_cam"
    title = "Seg-Grad-CAM"
    head = staticmethod(pixel_score_head)
    default_layer = staticmethod(default_decoder_layer)

    def __init__(self, model, layer=None):
        super().__init__(model, layer)
        graph = self._state.graph
        if graph.taps[self.path].output is graph.outputs[0]:
            raise ValueError(
                f"Layer {self.path!r} is the model's output, after its "
                "logits: Seg-Grad-CAM weighs a layer before them. Choose a "
                f"decoder layer such as {default_decoder_layer(self._state)!r} "
                "(see `explain-attn layers MODEL`)."
            )
        height, width = graph.outputs[0].shape[1:3]
        self._region_function = graph_function(
            self._region_maps,
            input_signature=[
                tf.TensorSpec((None, *self._input_shape), tf.float32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((None, height, width), tf.float32),
            ],
        )

    def scores(self, logits, classes):
        classes = region_classes(logits, classes)
        region = predicted_region(logits, classes)
        return _region_sum(logits, classes, region)

    def _region_maps(self, images, classes, regions):
        def score(logits):
            return _region_sum(logits, region_classes(logits, classes), regions)

        return self._cam(images, score)

    def batch(self, images, classes, resize_to=None, regions=None):
        """Maps of one batch: ``(B, h, w)`` float32 NumPy.

        Args:
            images: ``(B, H, W, C)`` float32.
            classes: ``(B,)`` int32 classes; -1 for the predicted class.
            resize_to: ``None`` or ``(height, width)``; bilinear.
            regions: ``None`` for each class's predicted mask, or ``(B, H,
                W)`` masks at the output's resolution (e.g. the true ones).
        """
        if regions is None:
            return super().batch(images, classes, resize_to)
        cam = self._region_function(
            tf.constant(images, tf.float32),
            tf.constant(classes, tf.int32),
            tf.constant(regions, tf.float32),
        )
        if resize_to is not None:
            cam = tf.image.resize(cam[..., None], resize_to)[..., 0]
        return cam.numpy()


def _region_sum(logits, classes, region):
    """``sum_{u, v} z_c[u, v] * region[u, v]`` per image: ``(B,)``."""
    class_logits = tf.gather(logits, classes, axis=3, batch_dims=1)
    return tf.reduce_sum(class_logits * region, axis=(1, 2))
