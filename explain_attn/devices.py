"""Several devices of one machine, with `tf.distribute.MirroredStrategy`.

`make_strategy` turns ``--devices N|all`` into a strategy (or ``None`` for
one device); `strategy_scope` is the scope to create or load models in
(their variables are then mirrored on every device; training uses it the
same way); `run_replicated` runs a per-batch function with the batch split
across the replicas and gathers the results in order, so a batch's maps
and predictions are those of one device, to float tolerance.

On one machine the strategy's devices are its GPUs; on a machine without
GPUs, its CPU devices (one unless logical devices were configured, as the
tests do with `tf.config.set_logical_device_configuration`).
"""

import contextlib
import functools

import numpy as np

__all__ = [
    "TRACED_NOTE",
    "device_names",
    "graph_function",
    "make_strategy",
    "replica_count",
    "run_replicated",
    "strategy_scope",
]


def device_names():
    """The names of the devices a strategy can use: GPUs, else CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def make_strategy(devices=None):
    """A `MirroredStrategy` over ``devices``, or None for one device.

    Args:
        devices: ``None`` or ``1`` (one device, no strategy), a positive
            int (the first that many devices), ``"all"``, or a digit string
            (as ``--devices`` passes it).

    Returns:
        ``None`` or a `tf.distribute.MirroredStrategy`.

    Raises:
        ValueError: For another value, or more devices than the machine
            has (the message lists them).
    """
    import tensorflow as tf

    count = _parse(devices)
    if count == 1:
        return None
    names = device_names()
    if count is None:
        count = len(names)
    if count > len(names):
        raise ValueError(
            f"--devices {count} asks for {count} devices but this machine "
            f"has {len(names)} ({', '.join(_short(n) for n in names)}). Pass "
            f"--devices {len(names)} or --devices all."
        )
    if count == 1:
        return None
    return tf.distribute.MirroredStrategy(names[:count])


def _parse(devices):
    if devices is None:
        return 1
    if isinstance(devices, str):
        if devices == "all":
            return None
        if devices.isdigit():
            devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices >= 1:
            return devices
    raise ValueError(
        "devices must be a positive integer or 'all'. Received: "
        f"devices={devices!r}"
    )


def _short(name):
    return name.rsplit("device:", 1)[-1]


def replica_count(strategy):
    """Number of replicas of ``strategy`` (1 for None)."""
    return 1 if strategy is None else strategy.num_replicas_in_sync


def strategy_scope(strategy):
    """``strategy.scope()``, or a scope that does nothing for None.

    Create or load models inside it so that their variables are mirrored
    on every device (inference and training alike)::

        strategy = make_strategy("all")
        with strategy_scope(strategy):
            model = keras.models.load_model(path)
    """
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()


TRACED_NOTE = "Raised while TensorFlow traced"
"""The start of the note `graph_function` adds to an error raised in a trace."""


def graph_function(function, input_signature=None):
    """``tf.function(function)`` traced without AutoGraph.

    What the library compiles (a model's pass, its maps, CAMs, curves) has
    no Python decisions on tensor values, and Keras traces its own steps
    the same way (``do_not_convert`` in its TensorFlow trainer). AutoGraph's
    conversion of every function called (the model's ``call`` included)
    cost about 1.1 s of the demo's 13 traces (issue 27, seventh round).

    An error raised while tracing gets a note naming the function
    (`TRACED_NOTE`), so that the command reports it as TensorFlow's, in one
    line naming the statement (`explain_attn.stages.tensorflow_reason`).

    Args:
        function: The Python function to trace.
        input_signature: As `tf.function`'s (``None``: traced per shape).
    """
    import tensorflow as tf

    @functools.wraps(function)
    def traced(*args):
        try:
            return function(*args)
        except Exception as error:  # Any error: noted, re-raised as is.
            # AutoGraph's "in user code:" frames are gone from the message;
            # the note tells `explain_attn.stages.tensorflow_reason` that the
            # error comes from inside a trace, and a reader of the traceback.
            error.add_note(f"{TRACED_NOTE} {function.__name__!r}.")
            raise

    return tf.function(traced, input_signature=input_signature, autograph=False)


def run_replicated(strategy, function, *arrays):
    """``function(*arrays)`` with the batch split across the replicas.

    Args:
        strategy: ``None`` (calls ``function`` directly) or a strategy.
        function: Takes batches (NumPy arrays or tensors, the same leading
            length) and returns an array, a list of arrays or a dict of
            them, one row per image.
        *arrays: The batch, split along its first axis into one contiguous
            part per replica (sizes differ by at most one; a batch smaller
            than the number of replicas runs on fewer of them).

    Returns:
        What ``function`` returns, with every array the parts
        concatenated in replica order, i.e. in the batch's order.
    """
    if strategy is None:
        return function(*arrays)
    count = len(arrays[0])
    replicas = replica_count(strategy)
    if count < replicas:
        with strategy.scope():  # Fewer images than devices: one of them.
            return function(*arrays)
    bounds = np.linspace(0, count, replicas + 1).astype(int)

    def part(index):
        return lambda context: tuple(
            array[
                bounds[context.replica_id_in_sync_group] : bounds[
                    context.replica_id_in_sync_group + 1
                ]
            ]
            for array in arrays
        )[index]

    values = [
        strategy.experimental_distribute_values_from_function(part(i))
        for i in range(len(arrays))
    ]
    outputs = strategy.run(function, args=tuple(values))
    return _gathered(strategy, outputs)


def _gathered(strategy, outputs):
    if isinstance(outputs, dict):
        return {
            key: _gathered(strategy, value) for key, value in outputs.items()
        }
    if isinstance(outputs, list | tuple):
        return type(outputs)(_gathered(strategy, value) for value in outputs)
    parts = strategy.experimental_local_results(outputs)
    return np.concatenate([np.asarray(part) for part in parts])
