"""Saving and loading models, with errors a user can act on."""

import re
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

# Importing the layers registers them with Keras before any load.
from explain_attn.attention import layers as _layers  # noqa: F401
from explain_attn.writing import atomic_path, check_writable

__all__ = [
    "atomic_path",
    "check_writable",
    "load_model",
    "model_bytes",
    "save_model",
]

_SUFFIXES = (".keras", ".h5", ".hdf5")
_WEIGHTS = ".weights.h5"


def save_model(model, path):
    """Saves ``model`` to a ``.keras`` file atomically.

    Args:
        model: A `keras.Model`.
        path: Destination ending in ``.keras``. Its directory must exist.

    Raises:
        ValueError: If the suffix is not ``.keras`` or the directory is
            missing or not writable.
        explain_attn.writing.DiskFullError: If the model does not fit on
            the disk (an earlier file stays).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(
            f"Models are saved in the Keras format, whose file name ends in "
            f"'.keras'. Received: path={str(path)!r}"
        )
    with atomic_path(path, needed=model_bytes(model)) as temporary:
        model.save(temporary)


def model_bytes(model):
    """What the weights and optimizer state of ``model`` take, in bytes:
    about the size of its ``.keras`` file (checked against the free space
    before saving, see `explain_attn.writing.check_space`)."""
    optimizer = getattr(model, "optimizer", None)
    variables = [
        *getattr(model, "weights", ()),
        *getattr(optimizer, "variables", ()),
    ]
    return sum(
        int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
        for variable in variables
    )


def load_model(path, *, safe_mode=True, factory=None):
    """Loads a Keras model saved as ``.keras`` (or legacy ``.h5``).

    The layers of `explain_attn.layers` are registered on import, so models
    using them load without ``custom_objects``. A model that cannot be
    reloaded from a file at all (e.g. ``Lambda`` layers with Python
    lambdas) is built by the user's ``factory`` and its weights read from a
    ``.weights.h5`` file (``model.save_weights("m.weights.h5")``).

    Args:
        path: The model file, or the ``.weights.h5`` file with ``factory``.
        safe_mode: Keras' safe mode, which refuses to deserialize arbitrary
            code such as a ``Lambda`` layer's function. Turn it off only for
            files you trust.
        factory: ``None``, or ``"module:function"`` (or
            ``"file.py:function"``) returning the model, called without
            arguments (see `explain_attn.models.user_code`).

    Returns:
        The `keras.Model`.

    Raises:
        ValueError: If the path is missing, is a directory (for example a
            TensorFlow SavedModel), is not a Keras file, is corrupt, holds
            unsafe code while ``safe_mode`` is on, or uses an unknown layer.
    """
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise ValueError(
            f"Model file not found: {shown!r}. Check the path, or train one "
            "with `explain-attn train`."
        )
    if factory is not None or shown.endswith(_WEIGHTS):
        return _load_from_factory(path, factory)
    if path.is_dir():
        raise ValueError(
            f"Model path {shown!r} is a directory (a TensorFlow SavedModel?); "
            "expected a '.keras' file. Re-save the model with "
            "model.save('model.keras')."
        )
    if path.suffix not in _SUFFIXES:
        raise ValueError(
            f"Model file {shown!r} has suffix {path.suffix!r}; expected a "
            "'.keras' file (or a legacy '.h5'). Re-save the model with "
            "model.save('model.keras')."
        )
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(
            f"Model file {shown!r} is not a Keras archive (a '.keras' file "
            "is a zip archive); it is corrupt or another kind of file. "
            "Re-save the model with model.save('model.keras')."
        )
    if path.suffix == ".keras" and not _has_keras_config(path):
        raise ValueError(
            f"Model file {shown!r} is a zip archive without the Keras model "
            "configuration ('config.json'); it is not a Keras model file. "
            "Re-save the model with model.save('model.keras')."
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _MASK_WARNING, UserWarning)
            return keras.models.load_model(path, safe_mode=safe_mode)
    except Exception as error:  # Keras raises many types; we explain them.
        raise ValueError(_explain_load_error(shown, error)) from error


_MASK_WARNING = (
    r"Layer '[^']*' \(of type \w+\) was passed an input with a mask attached"
)
"""Keras' warning, on every build of keras-hub's Swin, that its blocks
pass their attention a ``mask`` keyword (the shifted windows' mask, not a
Keras mask): nothing the user can act on."""

_UNKNOWN_CLASS = re.compile(
    r"Unknown layer|Could not locate|Could not deserialize (?:class|function) "
    r"'[^']+' because its parent module"
)
"""Keras' messages for a class or function that is not registered."""


def _missing_class(message):
    """``"'mine>Twice' (module 'mine')"`` from Keras' message, which
    names the class deep inside a long configuration.

    Keras says "Could not locate class 'Twice'"; Keras 3.5 first imports
    the class's module itself and, when it cannot, says "Could not
    deserialize class 'Twice' because its parent module mine cannot be
    imported".
    """
    found = re.search(
        r"Could not (?:locate|deserialize) (class|function) '([^']+)'",
        message,
    )
    if found is None:
        found = re.search(r"Unknown layer: '?([\w.>]+)", message)
        return repr(found.group(1)) if found else "(unnamed by Keras)"
    _, name = found.groups()
    registered = re.search(
        rf"'registered_name': '([^']*>{re.escape(name)})'", message
    )
    module = re.search(
        rf"'module': '([^']+)', 'class_name': '{re.escape(name)}'", message
    )
    shown = registered.group(1) if registered else name
    where = f" (module {module.group(1)!r})" if module else ""
    return f"{shown!r}{where}"


def _load_from_factory(path, factory):
    """The factory's model with the weights of ``path`` (``.weights.h5``)."""
    from explain_attn.models.user_code import build_from_factory

    shown = str(path)
    if factory is None:
        raise ValueError(
            f"{shown!r} holds weights only. Give the function that builds "
            "the model: --model-factory module:function (API: factory=)."
        )
    if not shown.endswith(_WEIGHTS):
        raise ValueError(
            f"--model-factory {factory} needs the model's weights as a "
            f"'{_WEIGHTS}' file (model.save_weights). Received: {shown!r}"
        )
    model = build_from_factory(factory)
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises many types; we explain them.
        message = " ".join(str(error).split())[:200]
        raise ValueError(
            f"The weights in {shown!r} do not fit the model of "
            f"--model-factory {factory}: {message}. Save them from the same "
            "architecture (model.save_weights)."
        ) from None
    return model


def _has_keras_config(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        # Unreadable archives are explained by the load error below.
        return True


def _root_cause(error):
    """The innermost error of ``error``'s chain (Keras wraps a Lambda's
    ``NameError`` in two ``NotImplementedError``)."""
    seen = {id(error)}
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
        if id(error) in seen:
            break
        seen.add(id(error))
    return error


_UNSAVED_FUNCTION = re.compile(
    r"'module': 'builtins', 'class_name': 'function', 'config': '(\w+)'"
)
"""How Keras saves a function it cannot name, e.g. ``tf.nn.swish``."""


def _explain_code_error(shown, error, message):
    """The message for a Lambda that fails on reload or a TensorFlow
    function saved as an activation, or ``None``."""
    cause = _root_cause(error)
    if isinstance(cause, NameError):
        return (
            f"Model {shown!r} has a Lambda layer whose function fails when "
            f"reloaded: NameError: {cause}. A Lambda's function is saved "
            "without the module globals it uses. Build the model from your "
            "code instead: save its weights (model.save_weights("
            "'model.weights.h5')) and pass them with --model-factory "
            "MODULE:FUNCTION (API: factory=)."
        )
    found = _UNSAVED_FUNCTION.search(message)
    if found is None:
        return None
    name = found.group(1)
    fix = (
        f"use Keras' own activation='{name}'"
        if hasattr(keras.activations, name)
        else "use a Keras activation or a registered function"
    )
    return (
        f"Model {shown!r} uses the function {name!r} as an activation, "
        "saved without its module: a TensorFlow function such as "
        f"tf.nn.{name}, which Keras cannot reload (--import cannot help). "
        f"Rebuild the model: {fix} and re-save it, or build it from your "
        "code with --model-factory MODULE:FUNCTION and its weights."
    )


def _explain_load_error(shown, error):
    message = " ".join(str(error).split())
    explained = _explain_code_error(shown, error, message)
    if explained is not None:
        return explained
    if "safe_mode" in message or "unsafe" in message.lower():
        return (
            f"Model {shown!r} contains code (e.g. a Lambda layer) that Keras "
            "safe mode refuses to load. If you trust the file, pass "
            "--unsafe-load (API: safe_mode=False)."
        )
    if _UNKNOWN_CLASS.search(message):
        return (
            f"Model {shown!r} uses a custom layer or function, "
            f"{_missing_class(message)}, that is not registered. Import "
            "the module that defines it (registered with "
            "keras.saving.register_keras_serializable) with --import "
            "MODULE_OR_FILE (API: import it before loading)."
        )
    if isinstance(error, zipfile.BadZipFile | EOFError | OSError):
        return (
            f"Model file {shown!r} is corrupt or truncated ({message[:120]}). "
            "Re-save the model with model.save('model.keras')."
        )
    return (
        f"Could not load model {shown!r}: {message[:200]}. Expected a model "
        "saved with model.save('model.keras')."
    )
