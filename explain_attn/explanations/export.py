"""Maps of a dataset, written as they are made (``explain-attn maps``).

Two formats:

- a folder (a name without a suffix, or ending in ``/``): one ``.npy`` per map
  (``map_<i>.npy`` per attention layer, ``<method>.npy`` per CAM method),
  ``predictions.npy``, ``labels.npy`` and ``manifest.json``. Each batch's
  maps are written straight into ``.npy`` files allocated at their full
  size first (so a full disk is a one-line error, never a crash), and
  memory does not grow with the number of images. The folder is written as
  a hidden sibling ``.<name>.partial-<pid>`` and renamed at the end,
  ``manifest.json`` last, so an interrupted run leaves no folder that looks
  complete; the next run removes what a killed one left
  (`explain_attn.writing.clean_stale`).
- an ``.npz`` file, built in memory: for small data.
- a shard's part (``shard=``): a folder as above holding the shard's rows
  (whole batches), which `explain_attn.explanations.map_parts` merges into
  the folder of a single run.

Predictions come from the forward pass that computes the attention maps
(one model with both outputs); the CAMs explain those predicted classes.
Without attention layers, a forward pass gives the predictions first.
"""

import json
import os
import shutil
import typing
from pathlib import Path

import numpy as np

from explain_attn.devices import run_replicated
from explain_attn.explanations.attention import (
    ChannelWeights,
)
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.explanation import Explainer, explanations_for
from explain_attn.explanations.inputs import (
    check_shape,
    input_shape,
    model_batches,
    resolve_input_scale,
)
from explain_attn.explanations.methods import ATTENTION, get_method
from explain_attn.explanations.predict import Predictor
from explain_attn.graph import model_state
from explain_attn.models.lookup import (
    attention_layer_names,
    channel_module_names,
    resolve_layers,
)
from explain_attn.models.task import (
    SEGMENTATION,
    check_task,
    unsupported_for_segmentation,
)
from explain_attn.sharding import (
    run_digest,
    shard_range,
    weights_digest,
    worker_record,
)
from explain_attn.stages import watch_outputs
from explain_attn.writing import (
    atomic_path,
    check_writable,
    clean_stale,
    disk_full,
    is_disk_full,
    partial_name,
    reserve,
)

__all__ = [
    "MANIFEST",
    "PART_FORMAT",
    "FolderWriter",
    "MapOutput",
    "check_cam_class",
    "check_output",
    "check_part_folder",
    "export_maps",
    "read_maps_folder",
]

MANIFEST = "manifest.json"
FORMAT = "explain-attn maps"
PART_FORMAT = "explain-attn maps part 1"
"""The ``format`` in the manifest of a shard's part (a folder)."""


def _split_layers(state, layers):
    """``(spatial layers or None, channel-module paths)`` to export."""
    channel = set(channel_module_names(state))
    if layers is None:
        spatial = attention_layer_names(state)
        return (spatial or None), sorted(channel, key=_order(state))
    paths = resolve_layers(state, layers)
    return (
        [p for p in paths if p not in channel] or None,
        [p for p in paths if p in channel],
    )


def _order(state):
    order = list(state.graph.taps)
    return order.index


def _explanations(state, layers, methods, cam_layer):
    for method in methods:
        if get_method(method).is_attention:
            raise ValueError(
                f"--method {method!r} is not a CAM method: attention maps "
                "are always written (choose layers with --layer). Choose a "
                "class-activation method such as grad_cam."
            )
    spatial, channel = _split_layers(state, layers)
    chosen = []
    if spatial is not None or (not methods and not channel):
        chosen.extend(explanations_for(state, ATTENTION, spatial))
    for method in methods:
        uses_class = get_method(method).uses_class
        where = cam_layer if uses_class else None
        chosen.extend(explanations_for(state, method, where))
    return chosen, channel


def _check_segmentation(state, task, kind, cam_class):
    """Checks what a segmentation export supports; returns the method
    ``with_grad_cam`` stands for."""
    if check_task(state, task) != SEGMENTATION:
        return "grad_cam"
    if kind != "npz":
        raise unsupported_for_segmentation(
            "`explain-attn maps --output FOLDER`"
        )
    if cam_class == "true":
        raise unsupported_for_segmentation(
            "`explain-attn maps --cam-class true`"
        )
    return "seg_grad_cam"


def _largest_foreground(predicted, num_classes):
    """Per image, the class of largest predicted area other than 0 (the
    background); 0 for a single sigmoid output. As `region_classes`."""
    if num_classes == 1:
        return np.zeros(len(predicted), np.int64)
    flat = predicted.reshape(len(predicted), -1)
    areas = np.stack([(flat == c).sum(axis=1) for c in range(num_classes)], 1)
    return np.argmax(areas[:, 1:], axis=1).astype(np.int64) + 1


def _cam_classes(cam_class, labels, predicted, num_classes):
    """The classes the CAMs explain for one batch; see `export_maps`."""
    if cam_class in (None, "predicted") and predicted.ndim > 1:
        return _largest_foreground(predicted, num_classes)
    if cam_class in (None, "predicted"):
        return predicted
    if cam_class == "true":
        return np.asarray(labels, dtype=np.int64)
    index = int(cam_class)
    if not 0 <= index < num_classes:
        raise ValueError(
            f"--cam-class {cam_class} is not a class of the model, which has "
            f"{num_classes} classes (0 to {num_classes - 1})."
        )
    return np.full(len(predicted), index, np.int64)


def check_cam_class(cam_class):
    """``"predicted"``, ``"true"`` or a class index; else `ValueError`."""
    if cam_class in (None, "predicted", "true"):
        return cam_class or "predicted"
    if isinstance(cam_class, int) and not isinstance(cam_class, bool):
        return cam_class
    if isinstance(cam_class, str) and cam_class.isdigit():
        return int(cam_class)
    raise ValueError(
        "--cam-class must be 'predicted', 'true' or a class index (0, 1, "
        f"...). Received: --cam-class {cam_class}"
    )


def check_output(path):
    """Raises unless ``path`` can take the maps; returns the format.

    The path is noted as the run's output (`explain_attn.stages.
    watch_outputs`), so that an interruption can say whether it changed.

    Returns:
        ``"npz"`` for a path ending in ``.npz``; ``"folder"`` for a name
        without a suffix or ending in ``/``.

    Raises:
        ValueError: For a folder output that is an existing file, or an
            existing folder that is neither empty nor one of ours (with a
            ``manifest.json`` of this format), or a missing parent folder.
    """
    shown, path = str(path), Path(path)
    watch_outputs(path)
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


def _ours(path, formats=(FORMAT,)):
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") in formats


def check_part_folder(path):
    """Raises unless ``path`` can take a shard's part (new, empty or an
    earlier part, which it replaces); creates its parent; returns it.
    The part is noted as the run's output (`watch_outputs`)."""
    path = Path(path)
    watch_outputs(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot create the parts folder {str(path.parent)!r} "
            f"({error.strerror}). Choose a writable --parts folder."
        ) from None
    clean_stale(path)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"The part {path.name} in {str(path.parent)!r} is a file, not a "
            "maps part. Remove it or choose another --parts folder."
        )
    if (
        path.is_dir()
        and any(path.iterdir())
        and not _ours(path, (PART_FORMAT,))
    ):
        raise ValueError(
            f"The part {path.name} in {str(path.parent)!r} holds files that "
            "are not a maps part of explain-attn. Remove it or choose "
            "another --parts folder."
        )
    check_writable(path.parent / f".{path.name}.probe")
    return path


def export_maps(
    model,
    dataset,
    path,
    *,
    layers=None,
    methods=(),
    cam_layer=None,
    cam_class="predicted",
    with_grad_cam=False,
    batch_size=128,
    input_scale=None,
    preprocess=None,
    strategy=None,
    task=None,
    shard=None,
):
    """Computes maps for a dataset and writes them (see the module).

    Args:
        model: The model, or its `explain_attn.graph.ModelState` (else
            one is built, and passed to every step).
        dataset: A data source: an `explain_attn.data.Dataset` or a
            streamed one (`explain_attn.data.open_source`).
        path: An ``.npz`` file, or a folder (see the module).
        layers: Attention modules as in `attention_maps`; ``None`` for every
            module. Channel modules (squeeze-and-excitation gates) give
            channel weights, never a map.
        methods: Names of other registered methods: class-activation
            methods (e.g. ``"grad_cam"``), each at ``cam_layer`` for the
            classes of ``cam_class``, or ``"channel_weighted"``.
        cam_layer: Layer of the CAM methods (``None``: the last 4-D layer
            of at least 2×2).
        cam_class: Which class the CAMs explain: ``"predicted"``, ``"true"``
            (the labels) or a class index.
        with_grad_cam: Shortcut for adding ``"grad_cam"`` to ``methods``.
        batch_size: Images per forward pass (shared by the replicas of
            ``strategy``).
        input_scale: The scale the model takes (``None``: inferred, see
            `explain_attn.explanations.inputs.resolve_input_scale`).
        preprocess: ``None`` or a function applied to every batch.
        strategy: ``None`` or a `tf.distribute` strategy.
        task: ``None``, ``"classification"`` or ``"segmentation"``: see
            ``explain-attn maps --help``.
        shard: ``None``, or an `explain_attn.sharding.ShardJob`: only its
            images (whole batches), into its part in ``shard.parts``
            (``path`` unused); see `explain_attn.explanations.map_parts`.

    Returns:
        A dict from each stored array's description to its shape.

    The arrays are those of ``explain-attn maps --help``.

    Raises:
        ValueError: For a bad output (`check_output`), images that do not
            fit the model (before any work), unknown layers or methods.
    """
    state = model_state(model)
    kind = "folder" if shard is not None else check_output(path)
    cam_class = check_cam_class(cam_class)
    shortcut = _check_segmentation(state, task, kind, cam_class)
    check_shape(dataset.image_shape, input_shape(state))
    scale = resolve_input_scale(state, input_scale)
    methods = list(dict.fromkeys([*methods, *([shortcut] * with_grad_cam)]))
    explanations, channel = _explanations(state, layers, methods, cam_layer)
    outputs = _outputs(explanations, channel)
    settings = {
        "cam_class": cam_class,
        "batch_size": batch_size,
        "input_scale": scale.scale,
        "preprocess": preprocess,
    }
    writer = _writer(state.model, dataset, path, kind, outputs, shard, settings)
    writer.input_scale = scale
    with writer:
        if writer.rows[1] > writer.rows[0]:
            step = _step(state, explanations, channel, cam_class)
            batches, labels = _rows(state, dataset, writer.rows, settings)
            _write(writer, batches, step, labels, strategy)
    return writer.summary


def _rows(state, dataset, rows, settings):
    """``(batches, labels)`` of images ``start`` to ``stop - 1`` (``rows``)
    of ``dataset``, as the model takes them (`model_batches`)."""
    start, stop = rows
    batch_size = settings["batch_size"]
    images = dataset
    if (start, stop) != (0, len(dataset)):
        chunks = dataset.batches(batch_size, start=start, stop=stop)
        images = (chunk for chunk, _, _ in chunks)
    batches = model_batches(
        state,
        images,
        batch_size,
        input_scale=settings["input_scale"],
        preprocess=settings["preprocess"],
    )
    return batches, np.asarray(dataset.labels, dtype=np.int64)[start:stop]


def _writer(model, dataset, path, kind, outputs, shard, settings):
    """The writer of ``path`` (an `_NpzWriter` or a `FolderWriter`), or
    with a ``shard``, the `FolderWriter` of its part: its rows (whole
    batches, `explain_attn.sharding.shard_range`) and its record."""
    if shard is None:
        writer = _NpzWriter if kind == "npz" else FolderWriter
        return writer(path, dataset, outputs)
    rows = shard_range(
        len(dataset), settings["batch_size"], shard.num_shards, shard.index
    )
    preprocess = settings["preprocess"]
    record = {
        "options": settings
        | {"preprocess": getattr(preprocess, "__qualname__", preprocess)},
        "maps": [[o.key, o.method, o.layer] for o in outputs],
        "models": [weights_digest(model)],
        "images": len(dataset),
        "image_shape": [int(n) for n in dataset.image_shape],
        "class_names": [str(name) for name in dataset.class_names],
        "has_masks": bool(dataset.has_masks),
    }
    part = {
        "fingerprint": run_digest(record, dataset.labels),
        "num_shards": shard.num_shards,
        "index": shard.index,
        "batch_size": settings["batch_size"],
        "run": shard.run,
        "worker": worker_record(),
    }
    folder = check_part_folder(shard.folder)
    return FolderWriter(folder, dataset, outputs, rows=rows, part=part)


def _write(writer, batches, step, labels, strategy):
    """Runs ``step`` on each batch (split across ``strategy``'s replicas)
    and writes what it returns."""
    start = 0
    for batch in batches:
        stop = start + len(batch)
        predictions, *values = run_replicated(
            strategy, step, batch, labels[start:stop]
        )
        writer.write(start, predictions, values)
        start = stop


class MapOutput(typing.NamedTuple):
    """One array written per image: its key, method, layer and label.

    ``names`` is the key of the array of layer paths it is listed in
    (``None`` for the classes of a CAM); ``single`` says that the layer
    path is stored as one string (a CAM method has one layer).
    """

    key: str
    method: str
    layer: str
    label: str | None
    names: str | None = None
    single: bool = False


def _outputs(explanations, channel):
    """The arrays `_step` returns after the predictions, in its order."""
    outputs, counts = [], {}
    for explanation in explanations:
        method = get_method(explanation.method)
        index = counts.get(method.name, 0)
        counts[method.name] = index + 1
        outputs.append(
            MapOutput(
                method.file_key(index),
                method.name,
                explanation.layer,
                explanation.short_label,
                method.layer_names_key,
                method.uses_class,
            )
        )
    for index, path in enumerate(channel):
        label = f"{path} (channel weights)"
        outputs.append(
            MapOutput(
                f"channel_{index}",
                "channel_weights",
                path,
                label,
                "channel_layer_names",
            )
        )
    cams = [o for o in outputs if o.single]
    outputs += [
        MapOutput(f"{o.method}_class", "classes", o.layer, None) for o in cams
    ]
    return outputs


def _step(state, explanations, channel, cam_class):
    """``function(batch, labels) -> [predictions, *arrays of `_outputs`]``."""
    explainer = (
        Explainer(explanations, predictions=True) if explanations else None
    )
    weights = [
        compiled(state, ("channel", p), lambda p=p: ChannelWeights(state, p))
        for p in channel
    ]
    num_classes = int(state.graph.outputs[0].shape[-1])
    num_cams = sum(e.uses_class for e in explanations)

    def step(batch, labels):
        def classes_for(predictions):
            return _cam_classes(
                cam_class, np.asarray(labels), predictions, num_classes
            ).astype(np.int64)

        if explainer is None:
            predictions = compiled(state, Predictor, lambda: Predictor(state))(
                batch
            )
            found = {}
        else:
            predictions, found = explainer.batch_with_predictions(
                batch, classes_for, labels
            )
        return [
            predictions,
            *(found[e] for e in explanations),
            *(function(batch) for function in weights),
            *([classes_for(predictions)] * num_cams),
        ]

    return step


class _Writer:
    def __init__(self, path, dataset, outputs):
        self.path = Path(path)
        self.dataset = dataset
        self.outputs = outputs
        self.keys = [output.key for output in outputs]
        self.summary = {}
        self.rows = (0, len(dataset.labels))

    def __enter__(self):
        return self

    def _describe(self, shapes):
        for output, shape in zip(self.outputs, shapes, strict=True):
            if output.label is not None and shape is not None:
                self.summary[output.label] = shape

    def _names(self):
        """The arrays of layer names that go with the maps."""
        names = {}
        for output in self.outputs:
            if output.names is None:
                continue
            if output.single:
                names[output.names] = np.array(output.layer)
            else:
                names.setdefault(output.names, []).append(output.layer)
        names.setdefault("layer_names", [])
        names.setdefault("channel_layer_names", [])
        return {
            key: np.array(value, dtype=str)
            if isinstance(value, list)
            else value
            for key, value in names.items()
        }


class _NpzWriter(_Writer):
    """Collects every map in memory and writes one ``.npz`` at the end."""

    def __enter__(self):
        self.chunks = [[] for _ in self.outputs]
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
        arrays.update(self._names())
        arrays["labels"] = np.asarray(self.dataset.labels)
        arrays["predictions"] = np.concatenate(self.predictions)
        arrays["class_names"] = np.array(self.dataset.class_names)
        self._describe([m.shape for m in maps])
        with atomic_path(self.path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return False


class FolderWriter(_Writer):
    """Writes each batch into the ``.npy`` files of a folder.

    Each file is created with its header and its full size allocated
    (`explain_attn.writing.reserve`: a full disk is an error here, never a
    ``SIGBUS`` later), then each batch is written in place at its offset.
    Nothing stays mapped or held, so memory does not grow with the number
    of images.

    Args:
        path: The folder.
        dataset: Its ``labels``, ``class_names`` and ``notes`` go in.
        outputs: The `MapOutput` of each array, in the order of `write`.
        rows: ``(start, stop)``: the images written (default: all); the
            manifest describes all of them.
        part: ``None``, or a shard's record: the folder is then the
            shard's part, and its manifest is the record, with
            `PART_FORMAT`, ``start``, ``stop`` and the manifest of the
            whole run under ``"manifest"``.
    """

    def __init__(self, path, dataset, outputs, *, rows=None, part=None):
        super().__init__(path, dataset, outputs)
        self.rows = rows or self.rows
        self.part = part

    def __enter__(self):
        clean_stale(self.path)
        self.temporary = partial_name(self.path)
        if self.temporary.exists():
            shutil.rmtree(self.temporary)
        start, stop = self.rows
        self.count = stop - start
        self.files = [self.temporary / f"{key}.npy" for key in self.keys]
        self.shapes = [None] * len(self.keys)
        self.offsets, self.sizes = {}, {}
        try:
            self.temporary.mkdir()
            labels = np.asarray(self.dataset.labels)[start:stop]
            self._create(self.temporary / "labels.npy", labels.dtype, ())
            self._put(self.temporary / "labels.npy", 0, labels)
            self._create(self.temporary / "predictions.npy", np.int64, ())
        except BaseException as error:
            self.__exit__(type(error), error, None)
            raise
        return self

    def _create(self, path, dtype, shape):
        dtype = np.dtype(dtype)
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (self.count, *shape),
        }
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            offset = handle.tell()
            size = self.count * int(np.prod(shape)) * dtype.itemsize
            self.sizes[path] = offset + size
            reserve(handle, offset + size)
        self.offsets[path] = (offset, dtype)

    def _put(self, path, start, values):
        offset, dtype = self.offsets[path]
        values = np.ascontiguousarray(values, dtype=dtype)
        row = values[:1].nbytes if len(values) else 0
        with open(path, "r+b") as handle:
            handle.seek(offset + start * row)
            handle.write(values.tobytes())

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
                dtype = np.int64 if values.dtype.kind in "iu" else np.float32
                self._create(self.files[index], dtype, values.shape[1:])
            self._put(self.files[index], start, values)

    def __exit__(self, kind, error, traceback):
        if kind is None:
            try:
                self._finish()
            except BaseException as failure:
                shutil.rmtree(self.temporary, ignore_errors=True)
                if is_disk_full(failure):
                    raise self._full() from None
                raise
            return False
        shutil.rmtree(self.temporary, ignore_errors=True)
        if is_disk_full(error):
            raise self._full() from None
        return False

    def _full(self):
        """A full disk, told with what the files begun so far needed."""
        needed = sum(self.sizes.values())
        kept = (
            f"the earlier maps in {str(self.path)!r} are unchanged"
            if (self.path / MANIFEST).is_file()
            else "no maps folder was written"
        )
        return disk_full(self.path, needed=needed or None, kept=kept)

    def manifest(self, shapes):
        """The manifest of the whole run, for the arrays' ``shapes`` (of
        the images written; ``None`` for an array never written)."""
        count = len(self.dataset.labels)
        return {
            "format": FORMAT,
            "version": 1,
            "count": count,
            "class_names": list(self.dataset.class_names),
            "labels": "labels.npy",
            "predictions": "predictions.npy",
            "maps": [
                {
                    "file": f"{output.key}.npy",
                    "method": output.method,
                    "layer": output.layer,
                    "shape": None if shape is None else [count, *shape[1:]],
                }
                for output, shape in zip(self.outputs, shapes, strict=True)
            ],
            "input_scale": self.input_scale.scale,
            "notes": [
                self.input_scale.note,
                *getattr(self.dataset, "notes", ()),
            ],
        }

    def _finish(self):
        shapes = [None if s is None else tuple(s) for s in self.shapes]
        self._describe(shapes)
        manifest = self.manifest(shapes)
        if self.part is not None:
            start, stop = self.rows
            manifest = {
                "format": PART_FORMAT,
                **self.part,
                "start": start,
                "stop": stop,
                "manifest": manifest,
            }
        with atomic_path(self.temporary / MANIFEST) as temporary:
            temporary.write_text(json.dumps(manifest, indent=1), "utf-8")
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        if self.path.exists():  # Empty, or our own earlier maps.
            self.path.rename(old)  # Put back by `clean_stale` after a kill.
        self.temporary.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)


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
