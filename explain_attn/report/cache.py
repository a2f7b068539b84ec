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
from explain_attn.models.saving import load_model, model_bytes, save_model
from explain_attn.stages import error_reason
from explain_attn.writing import (
    atomic_path,
    clean_stale,
    disk_full,
    is_disk_full,
    partial_name,
)

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
    say=None,
    retrain=False,
):
    """Loads a trained model from the cache, or trains and caches it.

    An entry is read only when it is whole and was written for these
    settings: ``meta.json`` an object with every key of its type, the
    model and record files with their recorded digests. A damaged entry is
    treated as absent, trained again and replaced whole, and ``say`` is
    told so in one line.

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
        say: Where the line about a damaged entry goes (``None``: not
            said).
        retrain: Train anew (else a miss takes the package's: `shipped`).

    Returns:
        ``(model, info)``: ``info`` has ``source`` (``"cache"`` or
        ``"trained"``), ``seconds_per_epoch``, ``history`` (a dict of lists),
        ``check`` (`TrainingCheck.as_dict`), ``record_file`` (the record's
        path) and ``key``.
    """
    training = {"epochs": epochs, "seed": seed, "batch_size": batch_size}
    training |= {"learning_rate": learning_rate, "strategy": strategy}
    settings = _settings(architecture, train_data, validation_data, **training)
    key = cache_key(settings)
    say = say or (lambda text: None)
    folder = Path(cache_dir or cache_directory()) / f"{architecture}-{key}"
    found = _lookup(architecture, settings, folder, strategy, retrain)
    model, meta, damage = found
    if damage is not None:
        say(f"Cache entry {folder} is damaged ({damage}): training it again.")
    if model is not None:
        return model, _info(meta, "cache", key, folder)
    if hasattr(train_data, "load"):
        train_data = train_data.load()
    data = (train_data, validation_data)
    options = {"verbose": verbose, "strategy": strategy}
    model, meta = _train_entry(folder, architecture, *data, settings, **options)
    return model, _info(meta, "trained", key, folder)


def _info(meta, source, key, folder):
    """What `train_or_load` returns beside the model."""
    record = str(folder / "record.npz")
    return {**meta, "source": source, "key": key, "record_file": record}


def _lookup(architecture, settings, folder, strategy, retrain):
    """`_read_entry` of ``folder``; on a clean miss, the package's entry
    for ``settings`` (`explain_attn.report.shipped`) copied there first;
    nothing with ``retrain``."""
    from explain_attn.report.shipped import find_shipped

    if retrain:
        return None, None, None
    with strategy_scope(strategy):
        found = _read_entry(folder, settings)
        source = find_shipped(architecture, settings)
        if found != (None, None, None) or source is None:
            return found
        _copy_entry(source, folder, settings)
        return _read_entry(folder, settings)


def _copy_entry(source, folder, settings):
    """Copies the shipped entry ``source`` into ``folder`` as `_write_entry`
    writes one (a hidden folder renamed into place), its ``meta.json``
    naming this run's ``settings`` (they differ at most in the library
    versions)."""
    clean_stale(folder)
    staging = partial_name(folder)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        for name in ("model.keras", "record.npz"):
            shutil.copyfile(source / name, staging / name)
        meta = json.loads((source / "meta.json").read_text(encoding="utf-8"))
        with atomic_path(staging / "meta.json") as temporary:
            temporary.write_text(
                json.dumps({**meta, "settings": settings}, indent=1)
            )
        _replace_folder(staging, folder, settings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train_entry(
    folder,
    architecture,
    train_data,
    validation_data,
    settings,
    *,
    verbose,
    strategy,
):
    """Trains the model of ``settings``, writes its entry into ``folder``;
    returns ``(model, meta)``."""
    import tempfile

    from explain_attn.models.recorder import AttentionRecorder, add_to_record
    from explain_attn.models.training import train_architecture

    epochs = settings["epochs"]
    with tempfile.TemporaryDirectory() as scratch:
        recorder = AttentionRecorder(
            validation_data or train_data, Path(scratch) / "record.npz"
        )
        start = time.perf_counter()
        model, history = train_architecture(
            architecture,
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            seed=settings["seed"],
            verbose=verbose,
            callbacks=[recorder],
            strategy=strategy,
        )
        meta = {
            "settings": settings,
            "seconds_per_epoch": (time.perf_counter() - start) / epochs,
            "history": {
                name: [float(v) for v in values]
                for name, values in history.history.items()
            },
            "check": history.check.as_dict(),
        }
        add_to_record(
            recorder.path,
            check=meta["check"],
            warnings=list(history.check.problems),
        )
        _write_entry(folder, model, meta, recorder.path)
    return model, meta


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


def _read_entry(folder, settings):
    """``(model, meta, None)`` for a sound entry; ``(None, None, reason)``
    for a damaged one (``reason`` says what is wrong), ``(None, None,
    None)`` for none."""
    if not folder.exists():
        return None, None, None
    damage = _damage(folder, settings)
    if damage is None:
        try:
            model = load_model(folder / "model.keras")
        except (ValueError, OSError) as error:
            damage = error_reason(error)
    if damage is not None:
        return None, None, damage
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return model, {k: v for k, v in meta.items() if "_sha256" not in k}, None


_META_TYPES = {
    "settings": dict,
    "seconds_per_epoch": (int, float),
    "history": dict,
    "check": dict,
    "model_sha256": str,
    "record_sha256": str,
}


def _damage(folder, settings):
    """What is wrong with the entry in ``folder`` (its model not loaded),
    or ``None``."""
    try:
        text = (folder / "meta.json").read_text(encoding="utf-8")
        meta = json.loads(text)
        return _meta_problem(meta, settings) or _file_problem(folder, meta)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        return error_reason(error)


def _meta_problem(meta, settings):
    """What is wrong with an entry's ``meta.json`` content, or ``None``."""
    if not isinstance(meta, dict):
        return f"meta.json holds a {type(meta).__name__}, not an object"
    for key, kind in _META_TYPES.items():
        if not isinstance(meta.get(key), kind):
            return f"meta.json has no valid {key!r}"
    if meta["settings"] != json.loads(json.dumps(settings)):
        return "meta.json was written for other settings or another recipe"
    history = meta["history"]
    if not all(
        isinstance(values, list)
        and all(isinstance(v, int | float) for v in values)
        for values in history.values()
    ):
        return "meta.json has no valid 'history'"
    return None


def _file_problem(folder, meta):
    """What is wrong with an entry's model or record file, or ``None``."""
    from explain_attn.models.recorder import load_record

    for name, key in (("model.keras", "model"), ("record.npz", "record")):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if meta[f"{key}_sha256"] != _file_digest(path):
            return f"{name} is truncated or altered"
    load_record(folder / "record.npz")  # Raises ValueError if unreadable.
    return None


def _write_entry(folder, model, meta, record):
    """Writes the entry into a hidden folder, renamed into place whole;
    an entry another run wrote meanwhile is kept (it is equal)."""
    clean_stale(folder)
    staging = partial_name(folder)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        model_path = staging / "model.keras"
        save_model(model, model_path)
        shutil.copyfile(record, staging / "record.npz")
        meta = {
            **meta,
            "model_sha256": _file_digest(model_path),
            "record_sha256": _file_digest(staging / "record.npz"),
        }
        with atomic_path(staging / "meta.json") as temporary:
            temporary.write_text(json.dumps(meta, indent=1))
        _replace_folder(staging, folder, meta["settings"])
    except Exception as error:
        # Broad on purpose: h5py and Keras wrap ENOSPC in their own types;
        # everything but a full disk is re-raised unchanged.
        if is_disk_full(error):
            raise disk_full(
                folder,
                needed=model_bytes(model) + Path(record).stat().st_size,
                kept="the model trained but was not cached, and nothing of "
                "it is kept",
            ) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(staging, folder, settings):
    """Renames ``staging`` onto ``folder``; a damaged ``folder`` is moved
    aside first and removed after, a sound one (another run's) is kept."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists() and _damage(folder, settings) is None:
        return
    if folder.exists():
        try:
            folder.rename(old)
        except FileNotFoundError:  # Another run moved it meanwhile.
            pass
    try:
        staging.rename(folder)
    except OSError:
        if not (folder / "meta.json").is_file():
            raise
        # Another run wrote the entry meanwhile: theirs is kept.
    shutil.rmtree(old, ignore_errors=True)
