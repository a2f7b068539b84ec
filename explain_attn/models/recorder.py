"""Attention recorded while a model learns: `AttentionRecorder`.

A Keras callback that, at the start of training and after every epoch (or
every ``every_steps`` steps), runs a fixed probe set through the model once
and keeps every attention module's weights (spatial maps ``(h, w)``,
channel weights ``(C,)``), the predictions, per-image metrics of the
spatial maps (against the masks when the probe has them) and Keras' logs
(loss, accuracy, validation). Everything goes into one ``.npz`` file,
rewritten atomically after each record, so an interrupted run keeps what
it recorded and a resumed run continues it.

A model *carries its record* when the file sits beside it:
``model.keras`` -> ``model.record.npz`` (`record_path`); the report's
"Attention during training" section reads it from there.

Maps are read in inference mode (BatchNormalization moving statistics, as
the finished model will use them), with the model's current weights.
"""

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np

from explain_attn import metrics
from explain_attn.data.adapter import as_source
from explain_attn.devices import graph_function
from explain_attn.models.saving import atomic_path
from explain_attn.models.sinks import RecordEntry, emit
from explain_attn.options import check_positive_int

__all__ = [
    "RECORD_METRICS",
    "AttentionRecorder",
    "TrainingRecord",
    "add_to_record",
    "epochs_to_reach",
    "load_record",
    "probe_indices",
    "record_path",
]

RECORD_METRICS = ("entropy", "mass_in_mask", "pointing_game")
"""The metrics recorded by default (the mask metrics only with masks)."""

_MASK_METRICS = {"mass_in_mask", "pointing_game", "rank_accuracy", "roc_auc"}
_MASK_METRICS |= {"top_fraction_iou"}


def record_path(model_path):
    """Where the record of the model saved at ``model_path`` lives."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.record.npz")


def probe_indices(labels, count, *, seed=0):
    """``count`` indices, spread over the classes in turn, seeded.

    Class by class in order of label, one image each round, drawn without
    replacement by `numpy.random.default_rng` (``seed``); sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pools = [
        list(rng.permutation(np.flatnonzero(labels == label)))
        for label in np.unique(labels)
    ]
    chosen = []
    while len(chosen) < min(count, len(labels)):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    return sorted(chosen)


class AttentionRecorder(keras.callbacks.Callback):
    """Records attention, metrics and logs on a fixed probe set.

    Args:
        probe: A labelled source (`explain_attn.data.adapter.as_source`:
            a `explain_attn.data.Dataset`, a streamed folder or ``.npz``;
            masks are used when present) or ``(images, labels)`` arrays,
            fitting the model's input; only the probe images are read.
        path: The ``.npz`` file to write (see `record_path`).
        num_images: How many probe images to keep (`probe_indices`).
        metrics: Names of per-image metrics of `explain_attn.metrics`
            computed on each spatial map; mask metrics are skipped when the
            probe has no masks.
        every_steps: ``None`` to record after every epoch, or a positive
            integer: record every that many training steps instead.
        seed: Seed of the probe's choice.
        resume: Continue an existing record at ``path`` (with
            `keras.callbacks.BackupAndRestore`): records after the epoch
            training resumes from are dropped, and no new initial record
            is taken.
        sinks: Trackers that receive every record as it is written
            (`explain_attn.models.sinks`: TensorBoard, W&B, MLflow); one
            that fails is dropped with a warning, the file goes on.

    The cost is one forward pass of ``num_images`` images per record;
    ``seconds`` in the file's metadata is the total time spent recording.
    """

    def __init__(
        self,
        probe,
        path,
        *,
        num_images=8,
        metrics=RECORD_METRICS,
        every_steps=None,
        seed=0,
        resume=False,
        sinks=(),
    ):
        super().__init__()
        check_positive_int("every_steps", every_steps, allow_none=True)
        source = as_source(probe, name="probe")
        self.indices = probe_indices(source.labels, num_images, seed=seed)
        chosen = source.subset(self.indices)
        images, labels, masks = next(chosen.batches(len(chosen)))
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels).astype(np.int64)
        # Label masks (several classes) count as foreground, any class.
        self.masks = None if masks is None else np.asarray(masks) > 0
        self.class_names = (
            None if isinstance(probe, tuple) else list(source.class_names)
        )
        self.metric_names = [
            name
            for name in metrics
            if self.masks is not None or name not in _MASK_METRICS
        ]
        self.path = Path(path)
        self.every_steps = every_steps
        self.resume = resume
        self.sinks = list(sinks)
        self._rows = []
        self._seconds = 0.0
        self._steps = 0

    # ------------------------------------------------------------ Keras

    def on_train_begin(self, logs=None):
        self._prepare()
        if self.resume and self.path.is_file():
            self._rows = _rows_from(load_record(self.path))
            self._seconds = self._previous_seconds
            return
        self._rows = []
        self._record(epoch=0.0, logs={})

    def on_epoch_begin(self, epoch, logs=None):
        # A resumed run starts at `epoch`: later records are stale.
        self._rows = [row for row in self._rows if row["epoch"] <= epoch]
        self._epoch = epoch
        self._steps_in_epoch = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        self._steps_in_epoch = batch + 1
        if self.every_steps and self._steps % self.every_steps == 0:
            per_epoch = self.params.get("steps") or (batch + 1)
            self._record(self._epoch + (batch + 1) / per_epoch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if not self.every_steps:
            self._record(float(epoch + 1), logs or {})

    def on_train_end(self, logs=None):
        for sink in self.sinks:
            sink.close(files=(self.path,))

    # ---------------------------------------------------------- helpers

    def _prepare(self):

        from explain_attn.graph import model_state
        from explain_attn.models.lookup import attention_modules

        # The model's state, built once when training begins.
        self.state = model_state(self.model)
        graph = self.state.graph
        self.modules = attention_modules(self.state, spatial=False)
        reader = keras.Model(
            graph.model_inputs,
            [m.source() for m in self.modules] + list(graph.outputs[:1]),
        )
        modules = self.modules

        def forward(images):
            values = reader(images, training=False)
            values = values if isinstance(values, list | tuple) else [values]
            weights = [
                module.parts(source)[1]
                for module, source in zip(modules, values, strict=False)
            ]
            return weights, values[-1]

        self._forward = graph_function(forward)
        self._previous_seconds = 0.0
        if self.resume and self.path.is_file():
            self._previous_seconds = load_record(self.path).meta["seconds"]

    def _record(self, epoch, logs):
        start = time.perf_counter()
        weights, scores = self._forward(self.images)
        row = {
            "epoch": float(epoch),
            "step": self._steps,
            "predictions": np.asarray(scores).argmax(-1),
            "logs": {k: float(v) for k, v in logs.items()},
            "maps": [],
            "metrics": [],
        }
        for module, value in zip(self.modules, weights, strict=True):
            value = np.asarray(value, dtype=np.float32)
            if module.kind.spatial:
                value = value[..., 0]
                row["metrics"].append(self._metrics(value))
            else:
                value = value.reshape(len(value), -1)
                row["metrics"].append({})
            row["maps"].append(value)
        self._rows.append(row)
        self._seconds += time.perf_counter() - start
        self._write()
        if self.sinks:
            self.sinks = emit(self.sinks, self._entry(row))

    def _entry(self, row):
        return RecordEntry(
            epoch=row["epoch"],
            step=row["step"],
            per_epoch=not self.every_steps,
            images=self.images,
            masks=self.masks,
            labels=self.labels,
            predictions=row["predictions"],
            layers=[
                {"path": m.path, "spatial": bool(m.kind.spatial)}
                for m in self.modules
            ],
            maps=row["maps"],
            metrics=row["metrics"],
            logs=row["logs"],
        )

    def _metrics(self, maps):
        values = {}
        for name in self.metric_names:
            function = getattr(metrics, name)
            values[name] = (
                function(maps, self.masks)
                if name in _MASK_METRICS
                else function(maps)
            )
        return values

    def _write(self):
        arrays = _arrays(self._rows, self.modules, self.metric_names)
        meta = {
            "version": 1,
            "layers": [
                {
                    "path": m.path,
                    "kind": m.kind.name,
                    "spatial": bool(m.kind.spatial),
                }
                for m in self.modules
            ],
            "metrics": self.metric_names,
            "logs": sorted({k for row in self._rows for k in row["logs"]}),
            "class_names": self.class_names,
            "probe_indices": self.indices,
            "every_steps": self.every_steps,
            "seconds": self._seconds,
            "model": self.model.name,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        arrays["images"] = self.images.astype(np.float16)
        arrays["labels"] = self.labels
        if self.masks is not None:
            arrays["masks"] = self.masks.astype(bool)
        for index, name in enumerate(meta["logs"]):
            arrays[f"log_{index}"] = np.array(
                [row["logs"].get(name, np.nan) for row in self._rows]
            )
        with atomic_path(self.path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, **arrays)


def _arrays(rows, modules, metric_names):
    arrays = {
        "epoch": np.array([row["epoch"] for row in rows], np.float64),
        "step": np.array([row["step"] for row in rows], np.int64),
        "predictions": np.stack([row["predictions"] for row in rows]),
    }
    for index, module in enumerate(modules):
        arrays[f"map_{index}"] = np.stack([row["maps"][index] for row in rows])
        if module.kind.spatial:
            for name in metric_names:
                arrays[f"metric_{index}_{name}"] = np.stack(
                    [row["metrics"][index][name] for row in rows]
                )
    return arrays


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """A record read back by `load_record`.

    Attributes:
        epoch: ``(R,)`` the epoch of each record (0 before training;
            fractional with ``every_steps``).
        step: ``(R,)`` training steps done at each record.
        images: ``(P, H, W, C)`` float32 probe images.
        labels: ``(P,)`` their labels.
        masks: ``(P, H, W)`` bool or ``None``.
        predictions: ``(R, P)`` predicted classes.
        layers: One dict per attention module: ``path``, ``kind``,
            ``spatial``.
        maps: One array per module: ``(R, P, h, w)`` (spatial) or
            ``(R, P, C)`` (channel weights).
        metrics: One dict per module, metric name -> ``(R, P)`` (empty for
            channel modules).
        logs: Keras log name -> ``(R,)`` (NaN where a record has none).
        meta: The rest: ``class_names``, ``probe_indices``,
            ``every_steps``, ``seconds`` (time spent recording),
            ``model``, and anything added later (e.g. ``check``).
    """

    epoch: np.ndarray
    step: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    predictions: np.ndarray
    layers: list
    maps: list
    metrics: list
    logs: dict
    meta: dict

    @property
    def probe_accuracy(self):
        """``(R,)`` the accuracy on the probe images at each record."""
        return (self.predictions == self.labels[None, :]).mean(axis=1)


def load_record(path):
    """Reads a record written by `AttentionRecorder`.

    Raises:
        ValueError: If the file is not such a record.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {key: data[key] for key in data.files}
        meta = json.loads(str(files["meta"]))
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"{str(path)!r} is not an attention record written by "
            f"AttentionRecorder ({type(error).__name__}: {error})."
        ) from None
    layers = meta.pop("layers")
    return TrainingRecord(
        epoch=files["epoch"],
        step=files["step"],
        images=files["images"].astype(np.float32),
        labels=files["labels"],
        masks=files.get("masks"),
        predictions=files["predictions"],
        layers=layers,
        maps=[files[f"map_{i}"] for i in range(len(layers))],
        metrics=[
            {
                name: files[f"metric_{i}_{name}"]
                for name in meta["metrics"]
                if f"metric_{i}_{name}" in files
            }
            for i in range(len(layers))
        ],
        logs={name: files[f"log_{i}"] for i, name in enumerate(meta["logs"])},
        meta=meta,
    )


def _rows_from(record):
    rows = []
    for r, epoch in enumerate(record.epoch):
        rows.append(
            {
                "epoch": float(epoch),
                "step": int(record.step[r]),
                "predictions": record.predictions[r],
                "logs": {
                    k: float(v[r])
                    for k, v in record.logs.items()
                    if np.isfinite(v[r])
                },
                "maps": [m[r] for m in record.maps],
                "metrics": [
                    {k: v[r] for k, v in layer.items()}
                    for layer in record.metrics
                ],
            }
        )
    return rows


def add_to_record(path, **entries):
    """Adds JSON-ready ``entries`` to the metadata of the record at ``path``.

    Used to store the `explain_attn.models.training.TrainingCheck` with the
    record once training has finished.
    """
    with np.load(path, allow_pickle=False) as data:
        files = {key: data[key] for key in data.files}
    meta = json.loads(str(files["meta"]))
    meta.update(entries)
    files["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **files)


def epochs_to_reach(record, threshold, *, log="val_accuracy"):
    """The first recorded epoch at which ``log`` reaches ``threshold``.

    Args:
        record: A `TrainingRecord`.
        threshold: The value to reach (e.g. 0.8 for 80 % accuracy).
        log: A Keras log name (``"accuracy"``, ``"val_accuracy"``) or
            ``"probe_accuracy"``.

    Returns:
        The epoch (a float), or ``None`` when it is never reached or the
        record has no such log.
    """
    if log == "probe_accuracy":
        values = record.probe_accuracy
    elif log in record.logs:
        values = record.logs[log]
    else:
        return None
    reached = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= threshold)
    return float(record.epoch[reached[0]]) if reached.size else None
