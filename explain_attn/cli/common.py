"""What every command shares: one-line errors, quiet TensorFlow, options.

Each command parses its arguments, calls the library and prints. Bad input,
whether caught by click or raised by the library as `ValueError` or
`TypeError`, becomes one line on stderr, ``Error: <what and how to fix>``,
and exit code 2, without a traceback; so does any other error (named by
its type), saying what finished before it (`user_errors`).
"""

import functools
import os
import sys
from pathlib import Path

import click


class InputError(click.ClickException):
    """A user-input problem: shown as one line, exit code 2."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: one line saying what is kept, exit code 130 (the shell's
    128 + SIGINT)."""

    exit_code = 130


QUIET_TENSORFLOW = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_CPP_MAX_VLOG_LEVEL": "-1",
    "GRPC_VERBOSITY": "NONE",
}
"""Environment read by TensorFlow's C++ logging when it loads: its warning
and error log lines (tf.data's, oneDNN's) stay off the user's stderr."""


def quiet_tensorflow_logs():
    """Sets `QUIET_TENSORFLOW` (unless the user set a variable, or
    ``EXPLAIN_ATTN_TF_LOGS=1``) and silences absl's Python logging.

    Called by the command line before TensorFlow is imported: a log line
    on stderr would break the promise of one line."""
    if os.environ.get("EXPLAIN_ATTN_TF_LOGS"):
        return
    for name, value in QUIET_TENSORFLOW.items():
        os.environ.setdefault(name, value)
    import logging

    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_line(message):
    return " ".join(str(message).split())


KERAS_EXTRAS_LEFT_OUT = ("sklearn", "pandas", "matplotlib.pyplot", "cv2")
"""Optional packages that Keras imports when it loads, for APIs no command
uses (`keras.wrappers`' scikit-learn estimators, slicing pandas frames in
`fit`, `keras.visualization`'s pyplot galleries and OpenCV boxes): about
1 s of the demo's start on 2 cores where they are installed. The command
line loads Keras without them (`import_keras`)."""


def import_keras():
    """Imports Keras as the command line uses it, without
    `KERAS_EXTRAS_LEFT_OUT`.

    Keras imports each of them in ``try: ... except ImportError``; while
    Keras loads, those not imported yet are marked absent in
    `sys.modules` (so importing them raises `ImportError`), and unmarked
    after: a later ``import sklearn`` (a user's module, a command's own
    code) imports the real package. In this process Keras' scikit-learn
    wrappers then say scikit-learn is missing.
    """
    if "keras" in sys.modules:
        return
    hidden = [name for name in KERAS_EXTRAS_LEFT_OUT if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        import keras  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up logs kept off stderr.

    TensorFlow 2.21 logs through absl before any log level applies
    (``TF_CPP_MIN_LOG_LEVEL`` does not silence these lines), which would
    break the promise of one line on stderr for bad input. The process's
    file descriptor 2 points to /dev/null while TensorFlow imports and
    initialises its devices; Python errors raised meanwhile still reach the
    user, because the descriptor is restored before they propagate. Set
    ``EXPLAIN_ATTN_TF_LOGS=1`` to see the logs.
    """
    if "tensorflow" in sys.modules:
        return
    if os.environ.get("EXPLAIN_ATTN_TF_LOGS"):
        import_keras()
        return
    saved = os.dup(2)
    try:
        silent = os.open(os.devnull, os.O_WRONLY)
        os.dup2(silent, 2)
        os.close(silent)
        import_keras()
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def user_errors(function):
    """Turns every error of the command into a one-line `InputError`.

    Input errors (`ValueError`, `TypeError`) keep their message; any other
    error is named by its type. The command's stages are recorded
    (`explain_attn.stages`): after expensive work the line says what
    finished and what of it is kept. A command that ends after an optional
    stage failed (the report without its Faithfulness section) also exits
    with this line, once its outputs are written. Ctrl-C is one line too
    (`explain_attn.stages.interrupt_message`: the stage it stopped, what
    finished and what is on disk), exit code 130.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from explain_attn.stages import (
            failure_message,
            interrupt_message,
            recording,
        )

        quiet_tensorflow_logs()
        _import_tensorflow_quietly()
        user_imports = kwargs.pop("user_imports", ())
        with recording() as log:
            try:
                if user_imports:
                    from explain_attn.models.user_code import import_modules

                    import_modules(user_imports)
                result = function(*args, **kwargs)
            except (click.ClickException, click.Abort, click.exceptions.Exit):
                raise
            except KeyboardInterrupt:
                raise Interrupted(interrupt_message(log)) from None
            except Exception as error:
                raise InputError(failure_message(log, error)) from None
            if log.skipped:
                raise InputError(failure_message(log))
            return result

    return wrapper


class OneLineErrors(click.Group):
    """A click group whose usage errors are one line, like `InputError`."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        quiet_tensorflow_logs()
        try:
            result = super().main(
                args, prog_name, standalone_mode=False, **extra
            )
        except click.ClickException as error:
            prefix = "" if isinstance(error, Interrupted) else "Error: "
            message = _one_line(error.format_message())
            click.echo(f"{prefix}{message}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:  # Ctrl-C outside a command's work.
            click.echo("Interrupted (Ctrl-C). Kept: nothing new.", err=True)
            sys.exit(130)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


layer_option = click.option(
    "--layer",
    "layer_names",
    multiple=True,
    help="Layer name, outer/inner path or glob pattern; repeat for more. "
    "Default: every attention layer.",
)
seed_option = click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of training, intervals and example choice.",
)


class ImageSize(click.ParamType):
    """``S`` (square, kept as the int ``S``) or ``HxW`` -> ``(H, W)``."""

    name = "SIZE|HxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple | int):
            return value
        text = str(value).strip().lower()
        parts = text.split("x")
        if len(parts) in (1, 2) and all(p.strip().isdigit() for p in parts):
            size = tuple(int(p) for p in parts)
            if all(n >= 1 for n in size):
                return size[0] if len(size) == 1 else size
        self.fail(
            f"{value!r} is not a size: give SIZE (e.g. 224) or HEIGHTxWIDTH "
            "(e.g. 192x256) of positive integers.",
            param,
            ctx,
        )


image_size_option = click.option(
    "--image-size",
    type=ImageSize(),
    default=None,
    help="Resize images to SIZE x SIZE, or HEIGHTxWIDTH (e.g. 192x256) "
    "[default: keep their size].",
)
input_scale_option = click.option(
    "--input-scale",
    type=click.Choice(["unit", "byte", "symmetric"]),
    default=None,
    help="Values the model takes: unit [0, 1], byte [0, 255] or symmetric "
    "[-1, 1]; float .npz images are read in it too [default: byte when the "
    "model rescales its input itself (a Rescaling layer), else unit; the "
    "choice is printed].",
)
task_option = click.option(
    "--task",
    type=click.Choice(["classification", "segmentation"]),
    default=None,
    help="What the model predicts: one class per image, or one per pixel "
    "(output (N, H, W, K) softmax or (N, H, W, 1) sigmoid) [default: read "
    "from the model's output].",
)
devices_option = click.option(
    "--devices",
    default="1",
    show_default=True,
    metavar="N|all",
    help="Devices of this machine to share each batch (GPUs, else CPUs), "
    "with tf.distribute.MirroredStrategy.",
)


def shard_options(unit, *, with_dask=True):
    """``--num-shards``, ``--shard-index`` and ``--parts``: one shard (a
    run of whole ``unit``, by image index) written as a part, for
    `explain-attn merge`. Checked together by `sharding`; ``with_dask``
    says whether the command also has ``--dask``."""
    parts_with = "--shard-index or --dask" if with_dask else "--shard-index"
    options = [
        click.option(
            "--num-shards",
            type=int,
            default=1,
            show_default=True,
            help=f"Cut the images into this many shards (runs of whole "
            f"{unit}).",
        ),
        click.option(
            "--shard-index",
            type=int,
            default=None,
            help="Run only this shard (0 to --num-shards - 1) and write its "
            "part to --parts; then `explain-attn merge PARTS` merges them.",
        ),
        click.option(
            "--parts",
            type=click.Path(file_okay=False),
            default=None,
            help=f"The folder of the shards' parts (with {parts_with}).",
        ),
    ]

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def sharding(
    num_shards, shard_index, parts, dask_address=None, *, with_dask=True
):
    """The options of a sharded run: ``{"shard": ShardJob}`` for one shard,
    the Dask run's for every shard, ``{}`` for a whole run; refuses
    options that do not go together (``with_dask``: as `shard_options`)."""
    from explain_attn.sharding import ShardJob

    if num_shards < 1:
        raise ValueError(
            f"--num-shards must be at least 1. Received: --num-shards "
            f"{num_shards}"
        )
    if parts is None and (shard_index is not None or dask_address):
        needs = "--shard-index needs"
        if with_dask:
            needs = "--shard-index and --dask need"
        raise ValueError(
            f"{needs} --parts, the folder the shards' parts are written to."
        )
    if parts is not None and shard_index is None and not dask_address:
        raise ValueError(
            "--parts needs --shard-index (run one shard)"
            + (" or --dask (run every shard and merge)." if with_dask else ".")
        )
    if shard_index is not None and dask_address:
        raise ValueError(
            "Give --shard-index (one shard) or --dask (every shard), not both."
        )
    if dask_address:
        return {
            "address": dask_address,
            "num_shards": num_shards,
            "parts": Path(parts),
        }
    if shard_index is None:
        return {}
    return {"shard": ShardJob(num_shards, shard_index, Path(parts))}


def method_option(function):
    # Not a click.Choice: the registry needs TensorFlow, and `--help` should
    # not wait for it. An unknown name is a one-line error listing them.
    return click.option(
        "--method",
        "methods",
        multiple=True,
        help="A class-activation method: grad_cam, grad_cam_plus_plus, "
        "layer_cam, hires_cam or any registered one; repeat for more. The "
        "report compares attention with the baseline's first "
        "[default: grad_cam].",
    )(function)


def unsafe_load_option(function):
    return click.option(
        "--unsafe-load",
        is_flag=True,
        help="Load models with Keras safe mode off (runs code stored in "
        "the file, e.g. Lambda layers). Only for files you trust.",
    )(function)


def import_option(function):
    """``--import MODULE_OR_FILE``: the user's code, imported before work.

    Goes above `user_errors`, which imports the modules (after TensorFlow,
    so that its start-up logs stay quiet) and hands the command the rest.
    """
    return click.option(
        "--import",
        "user_imports",
        multiple=True,
        metavar="MODULE_OR_FILE",
        help="Import a module or .py file first (e.g. one that registers "
        "your custom layers); repeat for more.",
    )(function)


def model_factory_option(function):
    """``--model-factory module:function``: builds a model whose file holds
    only weights (``.weights.h5``)."""
    return click.option(
        "--model-factory",
        default=None,
        metavar="MODULE:FUNCTION",
        help="Build the model with this function (module or file.py) and "
        "read its weights from MODEL, a .weights.h5 file: for models that "
        "cannot be reloaded from a .keras file (e.g. Python lambdas).",
    )(function)


def quiet_option(function):
    """``--quiet``: the command runs within `explain_attn.progress.quiet`.

    Progress (with the time left) shows on a terminal only; ``--quiet``
    turns it off there too: no bars, no per-epoch lines.
    """

    @click.option(
        "--quiet",
        "quiet_run",
        is_flag=True,
        help="No progress bars or per-epoch lines, even on a terminal "
        "(in a log there are none anyway).",
    )
    @functools.wraps(function)
    def wrapper(*args, quiet_run, **kwargs):
        # explain_attn.progress imports Keras: TensorFlow first, quietly.
        quiet_tensorflow_logs()
        _import_tensorflow_quietly()
        from explain_attn.progress import quiet

        with quiet(quiet_run):
            return function(*args, **kwargs)

    return wrapper
