"""Every shard of a report on Dask, then the merge: one command.

`dask_report` connects to a Dask scheduler (``local:K`` starts a
`distributed.LocalCluster` of K worker processes), registers a worker
plugin (`RunOnWorker`) that loads the models and opens the data once per
worker process, and submits one task per shard that has no complete part
in the parts folder yet (a resumed run redoes only the others). Each task
runs its shard's pass and writes its part
(`explain_attn.report.shards`); the worker's host and pid go into the
part. A worker that dies mid-task leaves no part (parts are written
atomically) and Dask runs its task again on another worker: every image
is counted once. When every part is there, `explain_attn.report.merge`
builds the report.

Dask is an optional extra: ``pip install "explain-attn[dask]"``.
"""

import dataclasses
import importlib.util
from pathlib import Path

try:
    from distributed import WorkerPlugin
except ImportError:  # Without the dask extra, `dask_report` says so.
    WorkerPlugin = object

from explain_attn.models.task import SEGMENTATION
from explain_attn.report.build import (
    open_run,
    run_record,
    shard_part,
)
from explain_attn.report.merge import merge_report
from explain_attn.report.segmentation import check_unsharded
from explain_attn.report.segmentation_sources import report_task
from explain_attn.report.shards import (
    ShardJob,
    complete_shards,
    numbers_options,
    run_fingerprint,
)

__all__ = ["CONNECT_TIMEOUT", "RunOnWorker", "dask_client", "dask_report"]

CONNECT_TIMEOUT = 10
"""Seconds to reach a scheduler before giving up."""
SOURCES = {
    "attention_models": (),
    "baseline_model": None,
    "image_size": None,
    "epochs": None,
    "cache_dir": None,
    "safe_mode": True,
    "spurious_correlation": None,
    "attention_factory": None,
    "baseline_factory": None,
    "input_scale": None,
}
"""`report_from_sources`' arguments naming the models and data, with
their defaults."""
PLUGIN_NAME = "explain-attn-run"
"""The name of the worker plugin holding a run's models and data."""


def _check_dask():
    if importlib.util.find_spec("distributed") is None:
        raise ValueError(
            "--dask needs Dask's distributed scheduler, which is not "
            'installed. Install the extra: pip install "explain-attn[dask]"'
        )


def _local_workers(address):
    """K of ``local:K``, or ``None`` for a scheduler's address."""
    if not str(address).startswith("local:"):
        return None
    count = str(address)[len("local:") :]
    if not count.isdigit() or int(count) < 1:
        raise ValueError(
            "--dask local:K needs K, the number of worker processes, "
            f"a positive integer. Received: --dask {address}"
        )
    return int(count)


def dask_client(address, *, timeout=None):
    """A `distributed.Client` for ``address``.

    Args:
        address: ``local:K`` (a new `LocalCluster` of K worker processes,
            one thread each) or a scheduler's address
            (``tcp://host:8786``).
        timeout: Seconds to reach a scheduler (`CONNECT_TIMEOUT`).

    Raises:
        ValueError: Without the dask extra, for a bad ``local:K`` or an
            address not reached within ``timeout``.
    """
    _check_dask()
    from distributed import Client, LocalCluster

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    count = _local_workers(address)
    if count is not None:
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster)
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise ValueError(
            f"Cannot reach a Dask scheduler at {address} within {timeout} s "
            f"({type(error).__name__}). Start one (`dask scheduler`, then "
            "`dask worker ADDRESS` on each machine) or use --dask local:K."
        ) from None


@dataclasses.dataclass
class RunOnWorker(WorkerPlugin):
    """A Dask worker plugin: the run's models and test data, loaded once
    in each worker process (`open_run`) and used by every shard it runs.

    Args:
        sources: The run's record (`run_record`): data and models.
        options: `explain_attn.report.build.build_report` options.
    """

    sources: dict
    options: dict
    models: list = None
    test: object = None
    name = PLUGIN_NAME

    def setup(self, worker):
        """Loads the models and opens the data (Dask calls it once per
        worker, and again on a worker that replaces a lost one)."""
        self.models, self.test = open_run(self.sources, self.options)


def _shard_task(num_shards, index, parts, run):
    """One shard on a worker: its pass, its part; returns the part's path."""
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN_NAME]
    job = ShardJob(num_shards, index, Path(parts), run=run)
    options = dict(plugin.options)
    return str(shard_part(plugin.models, plugin.test, job, **options))


def _worker_options(options):
    """The options a worker needs: no strategy, log or progress bar."""
    dropped = ("strategy", "log", "verbose", "command_line")
    return {k: v for k, v in options.items() if k not in dropped} | {
        "verbose": 0
    }


def dask_report(data="sample", *, address, num_shards, parts, **arguments):
    """Runs every missing shard on Dask, then merges the parts.

    Args:
        data: As `explain_attn.report.build.report_from_sources`.
        address: ``local:K`` or a scheduler's address (`dask_client`).
        num_shards: Shards to cut the test set into.
        parts: The parts folder; shards with a complete part of this run
            there are not run again.
        **arguments: The other `report_from_sources` arguments.

    Returns:
        The merged `explain_attn.report.build.Report`.
    """
    _check_dask()
    _local_workers(address)
    sources, options = _split_arguments(data, arguments)
    models, test = open_run(sources, options)
    if report_task(models, options.get("task")) == SEGMENTATION:
        check_unsharded({"shard": "dask"})
    run = run_record(sources, options)
    fingerprint = run_fingerprint(models, test, numbers_options(run))
    done = complete_shards(parts, fingerprint, num_shards)
    missing = [i for i in range(num_shards) if i not in done]
    say = options.get("log", print) if options.get("verbose", 1) else None
    if say:
        say(f"Shards: {len(done)} of {num_shards} done, {len(missing)} to run")
    if missing:
        _run_missing(address, sources, options, missing, num_shards, parts, run)
    keep = ("verbose", "log", "command_line", "strategy")
    return merge_report(
        parts, **{k: v for k, v in options.items() if k in keep}
    )


def _split_arguments(data, arguments):
    """``(sources, options)``: the run's data and models (`SOURCES`, with
    `report_from_sources`' defaults) and the `build_report` options."""
    sources = {"data": data}
    for name, default in SOURCES.items():
        sources[name] = arguments.pop(name, default)
    sources["attention_models"] = list(sources["attention_models"] or ())
    return sources, arguments


def _run_missing(address, sources, options, missing, num_shards, parts, run):
    client = dask_client(address)
    try:
        Path(parts).mkdir(parents=True, exist_ok=True)  # Once connected.
        client.register_plugin(RunOnWorker(sources, _worker_options(options)))
        futures = client.map(
            _shard_task,
            [num_shards] * len(missing),
            missing,
            [str(parts)] * len(missing),
            [run] * len(missing),
            pure=False,
        )
        client.gather(futures)
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
