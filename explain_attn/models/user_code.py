"""The user's own code: modules to import and model factories to call.

`--import MODULE_OR_FILE` runs a user's module before a model is loaded, so
the custom layers it registers (``@keras.saving.register_keras_serializable``)
are known to Keras. `--model-factory module:function` builds a model that
cannot be reloaded from a file at all (e.g. `Lambda` layers with Python
lambdas); its weights then come from a ``.weights.h5`` file.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import keras

__all__ = ["build_from_factory", "import_modules", "load_factory"]


def _import_one(spec):
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise ValueError(
                f"--import {spec}: no such file. Give an existing .py file "
                "or an importable module name."
            )
        name = f"explain_attn_user_{path.stem}"
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name and spec.startswith(error.name):
            raise ValueError(
                f"--import {spec}: no module named {error.name!r}. Give a "
                ".py file or a module on the Python path (PYTHONPATH)."
            ) from None
        raise


def import_modules(specs):
    """Imports each module name or ``.py`` file in ``specs``; returns them.

    Raises:
        ValueError: If a module or file is missing, or importing it fails
            (the message names the module and the error it raised).
    """
    modules = []
    for spec in specs or ():
        spec = str(spec)
        try:
            modules.append(_import_one(spec))
        except ValueError:
            raise
        except Exception as error:  # The user's code may raise anything.
            raise ValueError(
                f"--import {spec} failed: {type(error).__name__}: {error}. "
                "Fix the module, or import it in Python to see the traceback."
            ) from None
    return modules


def load_factory(spec):
    """Returns the callable named by ``module:function`` (or ``file.py:``).

    Raises:
        ValueError: If ``spec`` is malformed, the module cannot be imported
            or it has no such callable.
    """
    spec = str(spec)
    module_name, _, function_name = spec.rpartition(":")
    if not module_name or not function_name.isidentifier():
        raise ValueError(
            f"--model-factory {spec}: expected 'module:function' or "
            "'file.py:function'."
        )
    (module,) = import_modules([module_name])
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ValueError(
            f"--model-factory {spec}: {module_name!r} has no function "
            f"{function_name!r}."
        )
    return factory


def build_from_factory(spec, **arguments):
    """Calls the factory ``spec`` with ``arguments``; checks it gave a model.

    Arguments the factory does not accept are not passed (a factory may
    take ``input_shape`` and ``num_classes``, or nothing).

    Raises:
        ValueError: If the factory fails or returns something that is not a
            `keras.Model`.
    """
    import inspect

    factory = load_factory(spec)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    accepted = {
        key: value
        for key, value in arguments.items()
        if takes_any or key in parameters
    }
    try:
        model = factory(**accepted)
    except Exception as error:  # The user's code may raise anything.
        raise ValueError(
            f"--model-factory {spec} failed: {type(error).__name__}: {error}."
        ) from None
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"--model-factory {spec} returned {type(model).__name__}, not a "
            "keras.Model. Make the function return the model."
        )
    return model
