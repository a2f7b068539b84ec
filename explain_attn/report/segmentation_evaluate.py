"""The segmentation report's one pass: per-image numbers of every model.

For each chunk of the test set: each model's predicted label maps, its
Dice, IoU and pixel accuracy against the true label maps
(`explain_attn.report.segmentation_targets`), its gates' maps and its
Seg-Grad-CAM, and every map's mass in the true foreground and agreement
with the baseline's Seg-Grad-CAM. Only per-image numbers and the gallery's
few images are kept.
"""

import dataclasses

import keras
import numpy as np

from explain_attn.devices import graph_function
from explain_attn.explanations.methods import get_method
from explain_attn.explanations.seg_cam import SegGradCAM
from explain_attn.faithfulness.segmentation import segmentation_gates
from explain_attn.metrics import segmentation as overlap
from explain_attn.metrics.agreement import pearson
from explain_attn.metrics.foreground import mass_in_mask
from explain_attn.models.task import pixel_probability_function
from explain_attn.report.baselines import baseline_maps
from explain_attn.report.explorer import Thumbnails

__all__ = [
    "MapSpec",
    "PreparedModel",
    "SegmentationPass",
    "TRUE_MASK",
    "evaluate_segmentation",
]


@dataclasses.dataclass(frozen=True)
class MapSpec:
    """One map of the report: a model's gate or its Seg-Grad-CAM."""

    model_key: str
    method: str
    layer: str
    label: str

    @property
    def key(self):
        """A name unique in the report (the explorer's map id)."""
        return f"{self.model_key}/{self.method}/{self.layer}"


TRUE_MASK = MapSpec("data", "mask", "true", "true mask")
"""The true label map, as the explorer's first map."""


class PreparedModel:
    """Per-model state, prepared once: probabilities, gates, Seg-Grad-CAM."""

    def __init__(self, entry, shape, cam_layer):
        self.entry = entry
        graph = entry.state.graph
        forward = keras.Model(graph.model_inputs, graph.outputs[0])
        to_probabilities = pixel_probability_function(entry.state)
        self.probabilities = graph_function(
            lambda batch: to_probabilities(forward(batch, training=False))
        )
        self.gates = []
        if entry.role == "attention":
            self.gates = segmentation_gates(entry.state)
        self.attention = None
        if self.gates:
            self.attention = get_method("attention").prepare(
                entry.state, self.gates, resize_to=shape
            )
        self.mask = MapSpec(
            entry.key, "mask", "predicted", f"{entry.key}: predicted mask"
        )
        where = cam_layer if entry.role == "baseline" else None
        self.cam = SegGradCAM(entry.state, where)
        self.shape = shape

    def specs(self):
        key = self.entry.key
        rows = [
            MapSpec(key, "attention", g, f"{key}: gate {g}") for g in self.gates
        ]
        label = f"{key}: Seg-Grad-CAM ({self.cam.path})"
        return rows + [MapSpec(key, "seg_grad_cam", self.cam.path, label)]

    def maps(self, images, classes, regions):
        """``{MapSpec: (B, H, W)}`` of one batch."""
        found = {}
        if self.attention is not None:
            values = self.attention(images, None)
            for spec in self.specs()[:-1]:
                found[spec] = np.asarray(values[spec.layer], np.float32)
        cam = self.cam.batch(images, classes, self.shape, regions=regions)
        found[self.specs()[-1]] = cam
        return found


@dataclasses.dataclass
class SegmentationPass:
    """What `evaluate_segmentation` kept: per-image arrays by name."""

    specs: list
    reference: MapSpec
    dice: dict = dataclasses.field(default_factory=dict)
    iou: dict = dataclasses.field(default_factory=dict)
    accuracy: dict = dataclasses.field(default_factory=dict)
    mass: dict = dataclasses.field(default_factory=dict)
    agreement: dict = dataclasses.field(default_factory=dict)
    baselines: dict = dataclasses.field(default_factory=dict)
    true_labels: list = dataclasses.field(default_factory=list)
    label_counts: np.ndarray | None = None
    examples: list = dataclasses.field(default_factory=list)
    present: list = dataclasses.field(default_factory=list)
    """Per image, the foreground classes of its true label map (0-based:
    class ``k`` is label ``k + 1``)."""
    thumbnails: Thumbnails | None = None
    """The explorer's thumbnails: images, true and predicted masks, maps."""


def _explained(encoding, targets, labels, region):
    """Classes and regions of Seg-Grad-CAM for one batch: the predicted
    mask of the largest predicted foreground class, or the true one."""
    if region != "true":
        return np.full(len(targets), -1, np.int32), None
    if encoding.num_outputs == 1:
        classes = np.zeros(len(targets), np.int32)
    elif encoding.per_class:
        classes = np.asarray(labels, np.int32) + 1
    else:
        classes = np.ones(len(targets), np.int32)
    regions = (targets > 0).astype(np.float32)
    return classes, regions


def _append(store, key, values):
    store.setdefault(key, []).append(np.asarray(values, np.float64))


def _score_model(state, model, encoding, images, targets):
    """One model's Dice, IoU and pixel accuracy on a chunk; its predicted
    label maps."""
    predicted = encoding.predicted(model.probabilities(images))
    key = model.entry.key
    num = encoding.num_labels
    dice = overlap.dice_per_class(predicted, targets, num_labels=num)
    _append(state.dice, key, dice)
    iou = overlap.iou_per_class(predicted, targets, num_labels=num)
    _append(state.iou, key, iou)
    _append(state.accuracy, key, overlap.pixel_accuracy(predicted, targets))
    return predicted


def _count_labels(state, encoding, labels, targets):
    state.true_labels.append(np.asarray(labels))
    counts = np.bincount(targets.ravel(), minlength=encoding.num_labels)
    state.label_counts = counts + (
        0 if state.label_counts is None else state.label_counts
    )
    for target in targets:
        state.present.append([int(k) - 1 for k in np.unique(target) if k > 0])


def _score_chunk(state, prepared, encoding, chunk, region):
    images, labels, masks = chunk
    targets = encoding(labels, masks)
    foreground = targets > 0
    _count_labels(state, encoding, labels, targets)
    classes, regions = _explained(encoding, targets, labels, region)
    found, predicted = {}, {TRUE_MASK: targets}
    for model in prepared:
        predicted[model.mask] = _score_model(
            state, model, encoding, images, targets
        )
        found.update(model.maps(images, classes, regions))
    reference = found[state.reference]
    for spec, values in found.items():
        _append(state.mass, spec, mass_in_mask(values, foreground))
        if spec != state.reference:
            _append(state.agreement, spec, pearson(values, reference))
    for name, template in baseline_maps(foreground.shape[1:]).items():
        maps = np.broadcast_to(template, foreground.shape)
        _append(state.baselines, name, mass_in_mask(maps, foreground))
    return images, targets, found, predicted


def _keep_examples(state, start, chunk_result, wanted):
    images, targets, found, predicted = chunk_result
    state.thumbnails(start, images, {**predicted, **found})
    for offset in range(len(images)):
        if start + offset in wanted:
            maps = {spec: values[offset] for spec, values in found.items()}
            example = {"index": start + offset, "target": targets[offset]}
            example.update(image=np.asarray(images[offset]), maps=maps)
            state.examples.append(example)


def evaluate_segmentation(
    models,
    test,
    encoding,
    *,
    cam_layer=None,
    region="predicted",
    batch_size=64,
    example_indices=(),
):
    """One pass over ``test``: see the module.

    Args:
        models: `ReportModel` objects, the baseline last.
        test: A data source with masks.
        encoding: Its `TargetEncoding`.
        cam_layer: The baseline's Seg-Grad-CAM layer (``None``: default).
        region: ``"predicted"`` or ``"true"``: the region whose logits
            Seg-Grad-CAM sums.
        batch_size: Images per pass.
        example_indices: Images kept whole for the gallery.

    Returns:
        A `SegmentationPass` whose lists are concatenated arrays.
    """
    shape = tuple(test.image_shape[:2])
    prepared = [PreparedModel(entry, shape, cam_layer) for entry in models]
    specs = [spec for model in prepared for spec in model.specs()]
    state = SegmentationPass(specs=specs, reference=specs[-1])
    state.thumbnails = Thumbnails(
        specs,
        count=len(test.labels),
        image_shape=shape,
        label_maps=[TRUE_MASK] + [model.mask for model in prepared],
        num_labels=encoding.num_labels,
    )
    wanted = set(int(i) for i in example_indices)
    start = 0
    for images, labels, masks in test.batches(batch_size):
        batch = np.asarray(images, np.float32)
        result = _score_chunk(
            state, prepared, encoding, (batch, labels, masks), region
        )
        _keep_examples(state, start, result, wanted)
        start += len(images)
    for store in (
        state.dice,
        state.iou,
        state.accuracy,
        state.mass,
        state.agreement,
        state.baselines,
    ):
        for key, parts in store.items():
            store[key] = np.concatenate(parts)
    state.true_labels = np.concatenate(state.true_labels)
    return state
