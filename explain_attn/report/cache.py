"""A cache of trained demo models in the user's cache directory.

An entry is a folder named by the SHA-256 of everything that determines the
trained weights (architecture, data fingerprint, epochs, seed, training
settings, library versions). It holds ``model.keras`` and ``meta.json``;
``meta.json`` is written last and records the model file's SHA-256, so an
entry whose model is missing, truncated or altered is detected and retrained.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import keras

from explain_attn import __version__
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

    Returns:
        ``(model, info)``: ``info`` has ``source`` (``"cache"`` or
        ``"trained"``), ``seconds_per_epoch``, ``history`` (a dict of lists)
        and ``key``.
    """
    from explain_attn.models.training import train_architecture

    settings = {
        "architecture": architecture,
        "data": (
            train_data.key
            if hasattr(train_data, "load")
            else train_data.fingerprint()
        ),
        "validation": (
            validation_data.fingerprint() if validation_data else None
        ),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "explain_attn": __version__,
        "keras": keras.__version__,
    }
    key = cache_key(settings)
    folder = Path(cache_dir or cache_directory()) / f"{architecture}-{key}"
    cached = _read_entry(folder)
    if cached is not None:
        model, meta = cached
        return model, {**meta, "source": "cache", "key": key}

    if hasattr(train_data, "load"):
        train_data = train_data.load()
    start = time.perf_counter()
    model, history = train_architecture(
        architecture,
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    meta = {
        "settings": settings,
        "seconds_per_epoch": seconds / max(epochs, 1),
        "history": {
            name: [float(v) for v in values]
            for name, values in history.history.items()
        },
    }
    _write_entry(folder, model, meta)
    return model, {**meta, "source": "trained", "key": key}


def _read_entry(folder):
    """Returns ``(model, meta)`` for a sound entry, else ``None``."""
    meta_path = folder / "meta.json"
    model_path = folder / "model.keras"
    if not meta_path.is_file() or not model_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("model_sha256") != _file_digest(model_path):
            return None
        model = load_model(model_path)
    except (ValueError, OSError):
        return None
    return model, {k: v for k, v in meta.items() if k != "model_sha256"}


def _write_entry(folder, model, meta):
    if folder.exists():
        shutil.rmtree(folder)  # A corrupt entry: replaced whole.
    folder.mkdir(parents=True)
    model_path = folder / "model.keras"
    save_model(model, model_path)
    meta = {**meta, "model_sha256": _file_digest(model_path)}
    with atomic_path(folder / "meta.json") as temporary:
        temporary.write_text(json.dumps(meta, indent=1))
