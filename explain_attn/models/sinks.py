"""Where the attention record goes besides its ``.npz`` file: the trackers.

`explain_attn.models.recorder.AttentionRecorder` hands every record (the
same numbers it writes to its file) to its *sinks*: objects with
``write(entry)`` and ``close()``. A sink that fails is dropped with one
warning (`SinkWarning`); training and the ``.npz`` record go on.

- `TensorBoardSink` (TensorFlow's own ``tf.summary``, no extra package):
  for every spatial attention layer, the probe images with its map
  overlaid (tag ``attention/<layer>``), a histogram of its gate values
  (``gates/<layer>``), scalars of every recorded metric
  (``metrics/<layer>/<metric>``, the mean over the probe images), the
  probe accuracy and Keras' logs (``logs/<name>``); ``step`` is the epoch
  (or the training step with ``every_steps``). Written with
  ``tf.summary.write`` in TensorBoard's plugin layouts, so TensorFlow
  alone writes them, to ``LOGDIR/attention``, beside the ``train`` and
  ``validation`` folders of `keras.callbacks.TensorBoard`, so they show
  together.
- `WandbSink` (extra ``[wandb]``): per record, a ``wandb.Table`` with a
  row per probe image (the image with its mask outlined, each layer's map
  overlaid, label, prediction) and the same scalars.
- `MLflowSink` (extra ``[mlflow]``): per record, each layer's overlays as
  an image artifact per step and the scalars as metrics; at the end, the
  given files (the model's record) as artifacts.
"""

import dataclasses
import importlib
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

from explain_attn.overlays import mask_outline, overlay_rgb

__all__ = [
    "MLflowSink",
    "RecordEntry",
    "SinkWarning",
    "TensorBoardSink",
    "WandbSink",
    "emit",
    "make_sinks",
]


HISTOGRAM_BUCKETS = 30
"""Buckets of the gate histograms (TensorBoard's default)."""


class SinkWarning(UserWarning):
    """A tracker failed during training; its sink was dropped."""


@dataclasses.dataclass(frozen=True)
class RecordEntry:
    """One record, as the recorder writes it to its file.

    Attributes:
        epoch: The epoch (0 before training; fractional with steps).
        step: Training steps done.
        per_epoch: Whether records are taken per epoch (else per steps).
        images: ``(P, H, W, C)`` float32 probe images in [0, 1].
        masks: ``(P, H, W)`` bool or ``None``.
        labels, predictions: ``(P,)`` classes.
        layers: One dict per attention module: ``path``, ``spatial``.
        maps: One array per module: ``(P, h, w)`` or ``(P, C)``.
        metrics: One dict per module, metric name -> ``(P,)``.
        logs: Keras' logs at this record.
    """

    epoch: float
    step: int
    per_epoch: bool
    images: np.ndarray
    masks: np.ndarray | None
    labels: np.ndarray
    predictions: np.ndarray
    layers: list
    maps: list
    metrics: list
    logs: dict

    @property
    def tracker_step(self):
        """The step trackers plot against: the epoch, or training steps."""
        return int(round(self.epoch)) if self.per_epoch else int(self.step)

    def scalars(self):
        """Name -> value: each spatial layer's metrics (mean over the
        probe), the probe accuracy and Keras' logs."""
        values = {
            "probe_accuracy": float(np.mean(self.predictions == self.labels))
        }
        for layer, metrics in zip(self.layers, self.metrics, strict=True):
            for name, per_image in metrics.items():
                values[f"metrics/{layer['path']}/{name}"] = float(
                    np.nanmean(per_image)
                )
        values.update({f"logs/{k}": float(v) for k, v in self.logs.items()})
        return values

    def outlined_images(self):
        """``(P, H, W, 3)`` the probe images with their masks outlined."""
        return np.stack(
            [
                mask_outline(image, None if self.masks is None else mask)
                for image, mask in zip(self.images, self._masks(), strict=True)
            ]
        )

    def overlays(self, index):
        """``(P, H, W, 3)`` module ``index``'s maps over the probe images,
        masks outlined; only for spatial modules."""
        outlined = self.outlined_images()
        return np.stack(
            [
                mask_outline(overlay_rgb(image, values), mask)
                for image, values, mask in zip(
                    outlined, self.maps[index], self._masks(), strict=True
                )
            ]
        )

    def _masks(self):
        return [None] * len(self.images) if self.masks is None else self.masks


class TensorBoardSink:
    """Writes each record as TensorBoard summaries under ``log_dir``.

    Args:
        log_dir: The folder given to `keras.callbacks.TensorBoard`; the
            summaries go to its ``attention`` subfolder.
    """

    def __init__(self, log_dir):
        import tensorflow as tf

        self.directory = Path(log_dir) / "attention"
        self._writer = tf.summary.create_file_writer(str(self.directory))

    def write(self, entry):
        step = entry.tracker_step
        with self._writer.as_default(step=step):
            for index, layer in enumerate(entry.layers):
                name = layer["path"]
                _histogram(f"gates/{name}", entry.maps[index], step)
                if layer["spatial"]:
                    _images(f"attention/{name}", entry.overlays(index), step)
            for name, value in entry.scalars().items():
                _scalar(name, value, step)
        self._writer.flush()

    def close(self, files=()):
        self._writer.close()


def _metadata(plugin):
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata


def _scalar(tag, value, step):
    import tensorflow as tf

    tf.summary.write(
        tag,
        tf.constant(value, tf.float32),
        step=step,
        metadata=_metadata("scalars"),
    )


def _histogram(tag, values, step, *, buckets=HISTOGRAM_BUCKETS):
    """TensorBoard's histogram layout: ``(k, 3)`` left edge, right edge,
    count; one bucket when every value is the same."""
    import tensorflow as tf

    values = np.asarray(values, np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high > low:
        counts, edges = np.histogram(values, bins=buckets, range=(low, high))
        table = np.stack([edges[:-1], edges[1:], counts], axis=1)
    else:
        table = np.array([[low, high, values.size]], np.float64)
    tf.summary.write(
        tag, tf.constant(table), step=step, metadata=_metadata("histograms")
    )


def _images(tag, images, step):
    """TensorBoard's image layout: width, height, then one PNG each."""
    import tensorflow as tf

    pixels = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    pngs = [tf.io.encode_png(image).numpy() for image in pixels]
    height, width = pixels.shape[1:3]
    tensor = tf.constant([str(width).encode(), str(height).encode(), *pngs])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))


class WandbSink:
    """Logs each record to a W&B run (extra ``[wandb]``).

    Args:
        run: A ``wandb`` run (``wandb.init(...)``); ``None`` starts one,
            project ``explain-attn``, in ``directory``, offline unless
            ``WANDB_MODE`` says otherwise.
        directory: Where an offline run is kept.
    """

    def __init__(self, run=None, *, directory=None):
        import wandb

        self._wandb = wandb
        self._own = run is None
        self.run = run or wandb.init(
            project="explain-attn",
            mode=os.environ.get("WANDB_MODE", "offline"),
            dir=None if directory is None else str(directory),
        )

    def write(self, entry):
        wandb = self._wandb
        spatial = [
            i for i, layer in enumerate(entry.layers) if layer["spatial"]
        ]
        overlays = {i: entry.overlays(i) for i in spatial}
        columns = ["image", "label", "prediction"]
        columns += [entry.layers[i]["path"] for i in spatial]
        table = wandb.Table(columns=columns)
        for position, image in enumerate(entry.outlined_images()):
            table.add_data(
                wandb.Image(image),
                int(entry.labels[position]),
                int(entry.predictions[position]),
                *(wandb.Image(overlays[i][position]) for i in spatial),
            )
        self.run.log(
            {"attention": table, "epoch": entry.epoch, **entry.scalars()},
            step=entry.tracker_step,
        )

    def close(self, files=()):
        if self._own:
            self.run.finish()


class MLflowSink:
    """Logs each record to MLflow (extra ``[mlflow]``).

    Args:
        tracking_uri: Where runs go; ``None`` for MLflow's default (a local
            ``mlruns`` file store).
    """

    def __init__(self, tracking_uri=None):
        import mlflow

        self._mlflow = mlflow
        if tracking_uri is not None:
            mlflow.set_tracking_uri(str(tracking_uri))
        self._own = mlflow.active_run() is None
        self.run = mlflow.active_run() or mlflow.start_run()

    def write(self, entry):
        mlflow = self._mlflow
        step = entry.tracker_step
        names = {name: _metric_name(name) for name in entry.scalars()}
        mlflow.log_metrics(
            {names[k]: v for k, v in entry.scalars().items()}, step=step
        )
        for index, layer in enumerate(entry.layers):
            if layer["spatial"]:
                tiles = np.concatenate(list(entry.overlays(index)), axis=1)
                mlflow.log_image(
                    tiles,
                    key=_metric_name(f"attention/{layer['path']}"),
                    step=step,
                )

    def close(self, files=()):
        for path in files:
            if Path(path).is_file():
                self._mlflow.log_artifact(str(path))
        if self._own:
            self._mlflow.end_run()


def _metric_name(name):
    """MLflow accepts letters, digits, ``_-. /``: anything else becomes
    ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)


def _extra(module, extra):
    """Imports ``module`` or raises the one-line error naming the extra."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(
            f"--{extra} needs the {extra} package: pip install "
            f"'explain-attn[{extra}]'."
        ) from None


def make_sinks(*, tensorboard=None, wandb=False, mlflow=False):
    """The sinks the command line asks for, checked before training.

    Args:
        tensorboard: A log folder or ``None``; created if missing.
        wandb: Whether to log to W&B (offline unless ``WANDB_MODE`` says
            otherwise).
        mlflow: Whether to log to MLflow (its tracking URI as MLflow
            reads it: ``MLFLOW_TRACKING_URI``, else a local ``mlruns``
            folder).

    Returns:
        ``(sinks, callbacks)``: the sinks for `AttentionRecorder` and the
        Keras callbacks to train with (`keras.callbacks.TensorBoard`, when
        the ``tensorboard`` package that implements it is installed).

    Raises:
        ValueError: A tracker's package is missing, or the log folder
            cannot be written.
    """
    import keras

    sinks, callbacks = [], []
    if tensorboard is not None:
        folder = _writable_folder(tensorboard)
        if importlib.util.find_spec("tensorboard") is not None:
            # Keras' callback writes with tf.summary.scalar, which the
            # tensorboard package implements; without it, the sink's
            # ``logs/`` scalars carry Keras' logs.
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(folder)))
        sinks.append(TensorBoardSink(folder))
    if wandb:
        _extra("wandb", "wandb")
        sinks.append(WandbSink())
    if mlflow:
        _extra("mlflow", "mlflow")
        sinks.append(MLflowSink())
    return sinks, callbacks


def _writable_folder(path):
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".explain-attn-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"--tensorboard {path}: cannot write there "
            f"({error.strerror or error}). Give a folder you can write."
        ) from None
    return folder


def emit(sinks, entry):
    """Gives ``entry`` to each sink; returns the sinks that did not fail.

    A failing sink is dropped with one `SinkWarning`: the training and
    the ``.npz`` record go on.
    """
    kept = []
    for sink in sinks:
        try:
            sink.write(entry)
        except Exception as error:  # A tracker's failure never stops training.
            warnings.warn(
                f"{type(sink).__name__} failed and was turned off for the rest "
                f"of training ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]}); the attention "
                "record file is still written.",
                SinkWarning,
                stacklevel=2,
            )
            continue
        kept.append(sink)
    return kept
