"""A cache of trained demo models in the user's cache directory.

An entry is a folder named by the SHA-256 of everything that determines the
trained weights (architecture, data fingerprint, epochs, seed, training
settings and recipe, library versions). It holds ``model.keras``,
``record.npz`` (the model's attention record, taken while it trained, see
`explain_attn.models.recorder`) and ``meta.json``; ``meta.json`` is written
last and records the files' SHA-256, so an entry whose model or record is
missing, truncated or altered is detected and retrained.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import keras

from explain_attn import __version__
from explain_attn.devices import replica_count, strategy_scope
from explain_attn.models.saving import atomic_path, load_model, save_model

__all__ = ["cache_directory", "train_or_load"]


def cache_directory():
    """Returns the cache folder (not created here).

    ``$EXPLAIN_ATTN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/explain-attn``,
    else ``~/.cache/explain-attn``.
    """
    explicit = os.environ.get("EXPLAIN_ATTN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "explain-attn"


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(settings):
    """Returns the SHA-256 of ``settings`` (a JSON-serialisable dict)."""
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def train_or_load(
    architecture,
    train_data,
    *,
    validation_data=None,
    epochs,
    seed,
    batch_size,
    learning_rate,
    cache_dir=None,
    verbose=1,
    strategy=None,
):
    """Loads a trained model from the cache, or trains and caches it.

    Args:
        architecture: A key of `explain_attn.ARCHITECTURES`.
        train_data: The `explain_attn.data.Dataset` to train on, or an
            object with ``load()`` returning it and a ``key`` string that
            identifies it (e.g. `explain_attn.report.TrainingSplit`), so
            that a cache hit needs no data at all.
        validation_data: Optional dataset for the training curves.
        epochs, seed, batch_size, learning_rate: Training settings.
        cache_dir: The cache folder; `cache_directory()` when ``None``.
        verbose: Keras' progress bar setting for training.
        strategy: ``None`` or a `tf.distribute` strategy to load or train
            the model in; a model trained on several devices has an entry
            of its own (see `_settings`).

    Returns:
        ``(model, info)``: ``info`` has ``source`` (``"cache"`` or
        ``"trained"``), ``seconds_per_epoch``, ``history`` (a dict of lists),
        ``check`` (`TrainingCheck.as_dict`), ``record_file`` (the record's
        path) and ``key``.
    """
    import tempfile

    from explain_attn.models.recorder import AttentionRecorder, add_to_record
    from explain_attn.models.training import train_architecture

    settings = _settings(
        architecture, train_data, validation_data, epochs=epochs, seed=seed,
        batch_size=batch_size, learning_rate=learning_rate, strategy=strategy,
    )  # fmt: skip
    key = cache_key(settings)
    folder = Path(cache_dir or cache_directory()) / f"{architecture}-{key}"
    with strategy_scope(strategy):
        cached = _read_entry(folder)
    if cached is not None:
        model, meta = cached
        return model, {**meta, "source": "cache", "key": key,
                       "record_file": str(folder / "record.npz")}  # fmt: skip

    if hasattr(train_data, "load"):
        train_data = train_data.load()
    with tempfile.TemporaryDirectory() as scratch:
        recorder = AttentionRecorder(
            validation_data or train_data, Path(scratch) / "record.npz"
        )
        start = time.perf_counter()
        model, history = train_architecture(
            architecture, train_data, validation_data=validation_data,
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            seed=seed, verbose=verbose, callbacks=[recorder], strategy=strategy,
        )  # fmt: skip
        meta = {
            "settings": settings,
            "seconds_per_epoch": (time.perf_counter() - start) / epochs,
            "history": {
                name: [float(v) for v in values]
                for name, values in history.history.items()
            },
            "check": history.check.as_dict(),
        }
        add_to_record(recorder.path, check=meta["check"],
                      warnings=list(history.check.problems))  # fmt: skip
        _write_entry(folder, model, meta, recorder.path)
    return model, {**meta, "source": "trained", "key": key,
                   "record_file": str(folder / "record.npz")}  # fmt: skip


def _settings(architecture, train_data, validation_data, strategy, **training):
    """Everything that determines the trained weights, for the key.

    Training on several devices gives one device's weights only to float
    tolerance (or not at all when a batch does not split evenly), so their
    number is part of the key; one device's key is what it always was.
    """
    from explain_attn.models.training import RECIPE

    devices = replica_count(strategy)
    return {
        **({"devices": devices} if devices > 1 else {}),
        "architecture": architecture,
        "data": (
            train_data.key
            if hasattr(train_data, "load")
            else train_data.fingerprint()
        ),
        "validation": (
            validation_data.fingerprint() if validation_data else None
        ),
        **training,
        "recipe": RECIPE,
        "explain_attn": __version__,
        "keras": keras.__version__,
    }


def _read_entry(folder):
    """Returns ``(model, meta)`` for a sound entry, else ``None``."""
    meta_path = folder / "meta.json"
    model_path = folder / "model.keras"
    record_path = folder / "record.npz"
    files = (meta_path, model_path, record_path)
    if not all(path.is_file() for path in files):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("model_sha256") != _file_digest(model_path):
            return None
        if meta.get("record_sha256") != _file_digest(record_path):
            return None
        model = load_model(model_path)
    except (ValueError, OSError):
        return None
    return model, {k: v for k, v in meta.items() if not k.endswith("_sha256")}


def _write_entry(folder, model, meta, record):
    if folder.exists():
        shutil.rmtree(folder)  # A corrupt entry: replaced whole.
    folder.mkdir(parents=True)
    model_path = folder / "model.keras"
    save_model(model, model_path)
    shutil.copyfile(record, folder / "record.npz")
    meta = {
        **meta,
        "model_sha256": _file_digest(model_path),
        "record_sha256": _file_digest(folder / "record.npz"),
    }
    with atomic_path(folder / "meta.json") as temporary:
        temporary.write_text(json.dumps(meta, indent=1))
