"""Maps of a dataset, written as they are made (``explain-attn maps``).

Two formats:

- a folder (a name without a suffix, or ending in ``/``): one ``.npy`` per map
  (``map_<i>.npy`` per attention layer, ``<method>.npy`` per CAM method),
  ``predictions.npy``, ``labels.npy`` and ``manifest.json``. Each batch's
  maps go straight into memory-mapped ``.npy`` files
  (`numpy.lib.format.open_memmap`), so memory does not grow with the number
  of images. The folder is written as a hidden sibling
  ``.<name>.partial-<pid>`` and renamed at the end, ``manifest.json``
  last, so an interrupted run leaves no folder that looks complete.
- an ``.npz`` file, built in memory: for small data.

Predictions come from the forward pass that computes the attention maps
(one model with both outputs); the CAMs explain those predicted classes.
Without attention layers, a forward pass gives the predictions first.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from explain_attn.devices import run_replicated
from explain_attn.explanations.attention import AttentionExtractor
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.explanation import Explainer, explanations_for
from explain_attn.explanations.inputs import (
    check_shape,
    input_shape,
    model_batches,
    resolve_input_scale,
)
from explain_attn.explanations.lookup import attention_layer_names
from explain_attn.explanations.methods import get_method
from explain_attn.explanations.predict import Predictor
from explain_attn.models.saving import atomic_path, check_writable

__all__ = ["MANIFEST", "check_output", "export_maps", "read_maps_folder"]

MANIFEST = "manifest.json"
FORMAT = "explain-attn maps"


def _explanations(model, layers, methods, cam_layer):
    for method in methods:
        if not get_method(method).uses_class:
            raise ValueError(
                f"--method {method!r} is not a CAM method; attention maps "
                "are always written (choose layers with --layer). Choose a "
                "class-activation method such as grad_cam."
            )
    chosen = []
    if layers is not None or attention_layer_names(model) or not methods:
        chosen.extend(explanations_for(model, "attention", layers))
    for method in methods:
        chosen.extend(explanations_for(model, method, cam_layer))
    return chosen


def check_output(path):
    """Raises unless ``path`` can take the maps; returns the format.

    Returns:
        ``"npz"`` for a path ending in ``.npz``; ``"folder"`` for a name
        without a suffix or ending in ``/``.

    Raises:
        ValueError: For a folder output that is an existing file, or an
            existing folder that is neither empty nor one of ours (with a
            ``manifest.json`` of this format), or a missing parent folder.
    """
    shown, path = str(path), Path(path)
    if path.suffix.lower() == ".npz":
        check_writable(path)
        return "npz"
    if path.suffix and not shown.endswith(("/", os.sep)):
        raise ValueError(
            f"--output must end in '.npz' (one file) or name a folder "
            f"(no suffix, or ending in '/'). Received: --output {shown}"
        )
    if not path.parent.is_dir():
        raise ValueError(
            f"The folder {str(path.parent)!r} of --output does not exist. "
            "Create it first."
        )
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"--output {str(path)!r} is a file; maps go into a folder (or an "
            ".npz file). Choose a new folder name or end it in .npz."
        )
    if path.is_dir() and any(path.iterdir()) and not _ours(path):
        raise ValueError(
            f"--output folder {str(path)!r} exists and holds files that are "
            "not maps of explain-attn. Choose a new or empty folder."
        )
    check_writable(path.parent / f".{path.name}.probe")
    return "folder"


def _ours(path):
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def export_maps(
    model,
    dataset,
    path,
    *,
    layers=None,
    methods=(),
    cam_layer=None,
    with_grad_cam=False,
    batch_size=128,
    input_scale=None,
    preprocess=None,
    strategy=None,
):
    """Computes maps for a dataset and writes them (see the module).

    Args:
        model: The model.
        dataset: A data source: an `explain_attn.data.Dataset` or a
            streamed one (`explain_attn.data.open_source`).
        path: An ``.npz`` file, or a folder (see the module).
        layers: Attention layers as in `attention_maps`; ``None`` for every
            attention layer (none when the model has no attention layer and
            ``methods`` are given).
        methods: Names of class-activation methods (e.g. ``"grad_cam"``,
            ``"layer_cam"``), each computed at ``cam_layer`` for each
            image's predicted class.
        cam_layer: Layer of the CAM methods (``None``: the last 4-D layer).
        with_grad_cam: Shortcut for adding ``"grad_cam"`` to ``methods``.
        batch_size: Images per forward pass (shared by the replicas of
            ``strategy``).
        input_scale: The scale the model takes (``None``: inferred, see
            `explain_attn.explanations.inputs.resolve_input_scale`).
        preprocess: ``None`` or a function applied to every batch.
        strategy: ``None`` or a `tf.distribute` strategy.

    Returns:
        A dict from each stored map's description to its shape.

    The ``.npz`` holds ``map_<i>`` for the i-th entry of ``layer_names``,
    ``labels``, ``predictions``, ``class_names`` and, for each CAM method
    ``NAME``, ``NAME`` ``(N, h, w)`` and ``NAME_layer``. The folder holds
    the same arrays as ``.npy`` files, described in ``manifest.json``.

    Raises:
        ValueError: For a bad output (`check_output`), images that do not
            fit the model (before any work), unknown layers or methods.
    """
    kind = check_output(path)
    check_shape(dataset.image_shape, input_shape(model))
    scale = resolve_input_scale(model, input_scale)
    methods = list(dict.fromkeys([*methods, *(["grad_cam"] * with_grad_cam)]))
    explanations = _explanations(model, layers, methods, cam_layer)
    step = _step(model, explanations)
    writer = (_NpzWriter if kind == "npz" else _FolderWriter)(
        path, dataset, explanations
    )
    writer.input_scale = scale
    with writer:
        start = 0
        for batch in model_batches(
            model,
            dataset,
            batch_size,
            input_scale=scale.scale,
            preprocess=preprocess,
        ):
            predictions, *maps = run_replicated(strategy, step, batch)
            writer.write(start, predictions, maps)
            start += len(predictions)
    return writer.summary


def _step(model, explanations):
    """``function(batch) -> [predictions, *maps in explanation order]``."""
    attention = [e for e in explanations if e.method == "attention"]
    cams = [e for e in explanations if e.method != "attention"]
    paths = tuple(e.layer for e in attention)
    if paths:
        extractor = compiled(
            model,
            (AttentionExtractor, paths, None, "predictions"),
            lambda: AttentionExtractor(model, paths, predictions=True),
        )
    else:
        predictor = compiled(model, Predictor, lambda: Predictor(model))
    explainer = Explainer(cams) if cams else None

    def step(batch):
        if paths:
            maps, predictions = extractor.maps_and_predictions(batch)
        else:
            maps, predictions = {}, predictor(batch)
        found = {e: maps[e.layer] for e in attention}
        if explainer is not None:
            classes = predictions.astype(np.int32)
            found.update(explainer.batch(batch, classes))
        return [predictions, *(found[e] for e in explanations)]

    return step


def _key(explanation, index):
    if explanation.method == "attention":
        return f"map_{index}"
    return explanation.method


class _Writer:
    def __init__(self, path, dataset, explanations):
        self.path = Path(path)
        self.dataset = dataset
        self.explanations = explanations
        attention = [e for e in explanations if e.method == "attention"]
        self.keys = []
        for explanation in explanations:
            index = (
                attention.index(explanation) if explanation in attention else 0
            )
            self.keys.append(_key(explanation, index))
        self.summary = {}

    def __enter__(self):
        return self

    def _describe(self, shapes):
        for explanation, shape in zip(self.explanations, shapes, strict=True):
            name = (
                explanation.layer
                if explanation.method == "attention"
                else explanation.short_label
            )
            self.summary[name] = shape


class _NpzWriter(_Writer):
    """Collects every map in memory and writes one ``.npz`` at the end."""

    def __enter__(self):
        self.chunks = [[] for _ in self.explanations]
        self.predictions = []
        return self

    def write(self, start, predictions, maps):
        self.predictions.append(predictions)
        for chunks, values in zip(self.chunks, maps, strict=True):
            chunks.append(values)

    def __exit__(self, kind, error, traceback):
        if kind is not None:
            return False
        maps = [np.concatenate(chunks) for chunks in self.chunks]
        arrays = dict(zip(self.keys, maps, strict=True))
        arrays["layer_names"] = np.array(
            [e.layer for e in self.explanations if e.method == "attention"]
        )
        for explanation in self.explanations:
            if explanation.method != "attention":
                arrays[f"{explanation.method}_layer"] = np.array(
                    explanation.layer
                )
        arrays["labels"] = np.asarray(self.dataset.labels)
        arrays["predictions"] = np.concatenate(self.predictions)
        arrays["class_names"] = np.array(self.dataset.class_names)
        self._describe([m.shape for m in maps])
        with atomic_path(self.path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return False


class _FolderWriter(_Writer):
    """Writes each batch into the ``.npy`` files of a folder.

    Each file is created at its full size by `open_memmap` and then opened
    again (``r+``) for each batch only: a memory map kept open would keep
    every written page in the process's resident memory, which would then
    grow with the number of images.
    """

    def __enter__(self):
        self.temporary = self.path.with_name(
            f".{self.path.name}.partial-{os.getpid()}"
        )
        if self.temporary.exists():
            shutil.rmtree(self.temporary)
        self.temporary.mkdir()
        self.count = len(self.dataset)
        np.save(self.temporary / "labels.npy", np.asarray(self.dataset.labels))
        self.files = [self.temporary / f"{key}.npy" for key in self.keys]
        self.shapes = [None] * len(self.keys)
        self._create(self.temporary / "predictions.npy", np.int64, ())
        return self

    def _create(self, path, dtype, shape):
        created = np.lib.format.open_memmap(
            path, mode="w+", dtype=dtype, shape=(self.count, *shape)
        )
        del created  # Unmapped; written batch by batch in `_put`.

    def _put(self, path, start, values):
        stored = np.lib.format.open_memmap(path, mode="r+")
        stored[start : start + len(values)] = values
        stored.flush()
        del stored

    def write(self, start, predictions, maps):
        stop = start + len(predictions)
        if stop > self.count:
            raise ValueError(
                f"The data yielded more than its {self.count} images."
            )
        self._put(self.temporary / "predictions.npy", start, predictions)
        for index, values in enumerate(maps):
            if self.shapes[index] is None:
                self.shapes[index] = (self.count, *values.shape[1:])
                self._create(self.files[index], np.float32, values.shape[1:])
            self._put(self.files[index], start, values)

    def __exit__(self, kind, error, traceback):
        if kind is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
            return False
        try:
            self._finish()
        except BaseException:
            shutil.rmtree(self.temporary, ignore_errors=True)
            raise
        return False

    def _finish(self):
        shapes = [tuple(shape) for shape in self.shapes]
        self._describe(shapes)
        manifest = {
            "format": FORMAT,
            "version": 1,
            "count": self.count,
            "class_names": list(self.dataset.class_names),
            "labels": "labels.npy",
            "predictions": "predictions.npy",
            "maps": [
                {
                    "file": f"{key}.npy",
                    "method": explanation.method,
                    "layer": explanation.layer,
                    "shape": list(shape),
                }
                for key, explanation, shape in zip(
                    self.keys, self.explanations, shapes, strict=True
                )
            ],
            "input_scale": self.input_scale.scale,
            "notes": [
                self.input_scale.note,
                *getattr(self.dataset, "notes", ()),
            ],
        }
        with atomic_path(self.temporary / MANIFEST) as temporary:
            temporary.write_text(json.dumps(manifest, indent=1), "utf-8")
        if self.path.exists():
            shutil.rmtree(self.path)  # Empty, or our own earlier maps.
        self.temporary.rename(self.path)


def read_maps_folder(path):
    """Reads a maps folder: ``(manifest dict, {file: memory-mapped array})``.

    Raises:
        ValueError: If the folder has no manifest of this format.
    """
    path = Path(path)
    if not _ours(path):
        raise ValueError(
            f"{str(path)!r} is not a complete maps folder (no {MANIFEST} of "
            "explain-attn). Write it again with explain-attn maps."
        )
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    files = [manifest["labels"], manifest["predictions"]]
    files += [entry["file"] for entry in manifest["maps"]]
    arrays = {name: np.load(path / name, mmap_mode="r") for name in files}
    return manifest, arrays
