"""`explain-attn report`: the HTML report comparing attention with CAMs."""

import contextlib
import functools
import os
import sys
from pathlib import Path

import click

from explain_attn.cli.common import (
    devices_option,
    image_size_option,
    import_option,
    input_scale_option,
    layer_option,
    method_option,
    quiet_option,
    seed_option,
    shard_options,
    sharding,
    task_option,
    unsafe_load_option,
    user_errors,
)

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Read by NumPy's BLAS when NumPy is first imported."""


def single_threaded_blas(function):
    """Runs the command with NumPy's BLAS on one thread, unless set already.

    A threaded BLAS called while TensorFlow's thread pool keeps every core
    busy waits for cores: on 2 cores a report took 25 s with one BLAS
    thread and 166 s with the default (N = 500, 128 x 128) when the
    metrics' resize was a matrix product per map. The resize no longer
    calls BLAS (`explain_attn.metrics.arrays.resize`); this guards the
    matrix products that remain (the bootstrap's weighted sums, the
    channel statistics). The variables only act when NumPy has not been
    imported yet, so this wraps the command before TensorFlow (and NumPy)
    are imported; a variable the user set is left alone.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        for name in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(name, "1")
        return function(*args, **kwargs)

    return wrapper


def run_on_dask(*args, **kwargs):
    """`explain_attn.report.distributed.dask_report` (imported late: it
    needs the dask extra)."""
    from explain_attn.report.distributed import dask_report

    return dask_report(*args, **kwargs)


def outputs(output):
    """``(report.html, report.json)`` paths, checked before any work."""
    from explain_attn.stages import watch_outputs
    from explain_attn.writing import check_writable

    output_path = Path(output)
    if output_path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"--output must end in '.html'. Received: --output {output}"
        )
    check_writable(output_path)
    watch_outputs(output_path, output_path.with_suffix(".json"))
    return output_path, output_path.with_suffix(".json")


def _is_demo(data_source, options):
    """Whether the command runs the classification demo: no models, the
    bundled sample data."""
    given = options.get("attention_models") or options.get("baseline_model")
    task = options.get("task")
    return data_source == "sample" and not given and task != "segmentation"


def _size_option(name, check):
    return click.option(
        f"--{name}",
        type=click.IntRange(min=1),
        default=None,
        help=f"Test images of the {check} (a seeded random subset; all of "
        "them when the test split is smaller, with a note) [default: the "
        "mode's].",
    )


EPILOG = (
    "Segmentation models (one prediction per pixel, or --task segmentation) "
    "get the segmentation report: Dice and IoU with intervals, the gates' "
    "maps against the masks and the baseline's Seg-Grad-CAM (--cam-class "
    "predicted|true: the region whose logits it sums). Without models, "
    "--task segmentation trains (or loads) a U-Net and an Attention U-Net "
    "on the sample shapes, their masks as targets."
)
"""Help on segmentation models, after the options."""


@click.command("report", epilog=EPILOG)
@click.option(
    "--data",
    "data_source",
    default="sample",
    show_default=True,
    help="'sample', 'cifar10', an image folder or an .npz file.",
)
@click.option(
    "--attention-model",
    "attention_models",
    multiple=True,
    type=click.Path(),
    help="A .keras attention model; repeat for more. Needs "
    "--baseline-model. Without models the demo pair is trained.",
)
@click.option(
    "--baseline-model",
    type=click.Path(),
    help="The .keras baseline whose Grad-CAM the attention is compared with.",
)
@layer_option
@method_option
@click.option(
    "--cam-layer",
    default=None,
    help="The baseline's CAM layer: name, path or pattern of one 4-D layer "
    "of at least 2x2 [default: its last one; see explain-attn layers]. "
    "Attention models use their own last one.",
)
@click.option(
    "--cam-class",
    default="predicted",
    show_default=True,
    metavar="predicted|true|INDEX",
    help="The class the CAMs explain: each image's predicted class, its "
    "true label, or one class index for every image.",
)
@click.option(
    "--attention-factory",
    default=None,
    metavar="MODULE:FUNCTION",
    help="Build the --attention-model files given as .weights.h5 with this "
    "function (for models that cannot be reloaded from .keras).",
)
@click.option(
    "--baseline-factory",
    default=None,
    metavar="MODULE:FUNCTION",
    help="The same for a --baseline-model given as .weights.h5.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs of the demo models [default: the demo's].",
)
@click.option(
    "--num-examples",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Test images shown in the gallery.",
)
@image_size_option
@seed_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML report; the numbers go beside it as .json.",
)
@click.option(
    "--faithfulness",
    type=click.Choice(["full", "fast", "off"]),
    default=None,
    help="The Faithfulness section (attention interventions, randomisation "
    "checks, deletion curves): 'full'; 'fast', the same checks on fewer "
    "images (interventions 256, randomisation 32 with one step per block, "
    "deletion 64 in 5 steps); or 'off'.  [default: full; the demo (no "
    "models, --data sample): full's checks with randomisation and deletion "
    "on 128 images]",
)
@click.option(
    "--no-faithfulness",
    is_flag=True,
    help="The same as --faithfulness off.",
)
@_size_option("intervention-images", "attention interventions")
@_size_option("randomization-images", "randomisation checks")
@_size_option("deletion-images", "deletion and insertion curves")
@click.option(
    "--deletion-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps of the deletion and insertion curves [default: the mode's].",
)
@click.option(
    "--spurious-correlation",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Demo on --data sample only: probability that a training image's "
    "background tint gives its class away; the test split stays clean.",
)
@shard_options("chunks")
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="local:K|ADDRESS",
    help="Run every shard on Dask (a LocalCluster of K worker processes, "
    "or a running scheduler's address), then merge. Needs the dask extra.",
)
@task_option
@click.option(
    "--retrain",
    is_flag=True,
    help="Train the demo models anew (not from the cache or the trained "
    "copies the package ships); the cache keeps the new ones.",
)
@input_scale_option
@devices_option
@unsafe_load_option
@import_option
@quiet_option
@single_threaded_blas
@user_errors
def report_command(
    data_source,
    layer_names,
    methods,
    cam_class,
    output,
    faithfulness,
    no_faithfulness,
    intervention_images,
    randomization_images,
    deletion_images,
    deletion_steps,
    devices,
    unsafe_load,
    num_shards,
    shard_index,
    parts,
    dask_address,
    **options,
):
    """Compare attention maps with the baseline's CAMs in an HTML report.

    With no options, runs the demo offline on the bundled sample data: a
    ConvNet and its twin with spatial attention (shipped trained; --retrain
    trains them), evaluated on its test split, into report.html and
    report.json. The last line printed is the report's path. --devices
    splits every model pass across devices (tf.distribute.MirroredStrategy).
    """
    from explain_attn.devices import make_strategy
    from explain_attn.explanations.export import check_cam_class
    from explain_attn.report import report_from_sources
    from explain_attn.report.drawing import drawing_process
    from explain_attn.report.faithfulness import (
        demo_mode,
        faithfulness_settings,
    )

    checks = faithfulness_settings(
        demo_mode(
            faithfulness, no_faithfulness, demo=_is_demo(data_source, options)
        ),
        intervention_images=intervention_images,
        steps=deletion_steps,
        randomization_images=randomization_images,
        deletion_images=deletion_images,
    )
    extra = sharding(num_shards, shard_index, parts, dask_address)
    paths = None if "shard" in extra else outputs(output)
    cam_class = check_cam_class(cam_class)
    # The other options (models, factories, epochs, image size, seed, task,
    # ...) are report_from_sources' keyword arguments under the same names.
    arguments = dict(
        layers=list(layer_names) or None,
        methods=list(methods) or ["grad_cam"],
        cam_class=cam_class,
        safe_mode=not unsafe_load,
        command_line=" ".join(["explain-attn", *sys.argv[1:]]),
        log=click.echo,
        faithfulness=checks,
        strategy=make_strategy(devices),
        **extra,
        **options,
    )
    if "shard" in extra:
        click.echo(f"Part: {report_from_sources(data_source, **arguments)}")
    elif dask_address:
        write_report(run_on_dask(data_source, **arguments), *paths)
    else:
        # A helper process draws the figures while the report computes.
        with drawing_process() as drawer:
            report = report_from_sources(
                data_source, drawer=drawer, **arguments
            )
            write_report(report, *paths)


def write_report(report, output_path, json_path):
    """Renders ``report`` and writes it and its numbers, atomically; prints
    the paths (the report's last)."""
    html = _rendered(report, output_path, json_path)
    _write_pair(report, html, output_path, json_path)
    click.echo(f"Numbers: {json_path}")
    click.echo(str(output_path))
    _keep_written(output_path, json_path)


def _write_pair(report, html, output_path, json_path):
    """Writes report.json and report.html as one set: both or neither
    (`explain_attn.writing.atomic_files`); ``html=None`` writes the numbers
    and removes an earlier report.html, which would not match them."""
    from explain_attn.report import write_json
    from explain_attn.writing import atomic_files

    kept = (
        f"the earlier {json_path.name} and {output_path.name} are unchanged"
        if json_path.exists() or output_path.exists()
        else "nothing of the report was written"
    )
    with atomic_files([json_path, output_path], kept=kept) as temporaries:
        write_json(report, temporaries[0])
        if html is not None:
            temporaries[1].write_text(html, encoding="utf-8")


def _rendered(report, output_path, json_path):
    """The report's HTML, rendered before anything is written.

    Ctrl-C while rendering writes nothing. An error does not lose the
    evaluation: the numbers are complete, so they are written (to
    ``json_path``, with an earlier HTML removed: it belongs to other
    numbers) and the error says so.
    """
    from explain_attn.report import report_html
    from explain_attn.stages import keep, stage

    try:
        with stage("rendering the report"):
            return report_html(report)
    except Exception:
        # Writing the numbers is best effort: rendering's error is told.
        with contextlib.suppress(OSError, TypeError, ValueError):
            had_html = output_path.exists()
            _write_pair(report, None, output_path, json_path)
            removed = f"; the earlier {output_path} was removed" * had_html
            keep(
                f"the report's numbers in {json_path} (no HTML "
                f"written{removed})"
            )
        raise


def _keep_written(output_path, json_path):
    """Says what was written when an optional section was left out."""
    from explain_attn.stages import current_log, keep

    log = current_log()
    for skipped in log.skipped if log is not None else ():
        keep(
            f"{output_path} and {json_path}, complete but for the "
            f"{skipped.section} section (a warning in the report says so)"
        )
