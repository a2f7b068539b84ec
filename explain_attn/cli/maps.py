"""`explain-attn maps`: attention maps and CAMs of a dataset, to a file."""

import dataclasses

import click

from explain_attn.cli.common import (
    devices_option,
    image_size_option,
    import_option,
    input_scale_option,
    layer_option,
    method_option,
    model_factory_option,
    shard_options,
    sharding,
    task_option,
    unsafe_load_option,
    user_errors,
)

EPILOG = (
    "A segmentation model (--task segmentation, or an output per pixel): "
    "'predictions' are (N, H, W) label maps and --grad-cam is Seg-Grad-CAM "
    "(the sum of the class's logits over its predicted mask), for the "
    "foreground class of largest predicted area unless --cam-class INDEX."
)
"""Help on segmentation models, after the options."""


@click.command("maps", epilog=EPILOG)
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option(
    "--data",
    "data_source",
    required=True,
    help="'sample', 'cifar10', an image folder or an .npz file.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "train"]),
    default="test",
    show_default=True,
    help="Which split of --data to use.",
)
@layer_option
@click.option(
    "--grad-cam",
    "with_grad_cam",
    is_flag=True,
    help="Also compute Grad-CAM (the same as --method grad_cam).",
)
@method_option
@click.option(
    "--cam-layer",
    default=None,
    help="Layer of the --method maps: name, path or pattern of one 4-D "
    "layer of at least 2x2 [default: the last one; see explain-attn "
    "layers].",
)
@click.option(
    "--cam-class",
    default="predicted",
    show_default=True,
    metavar="predicted|true|INDEX",
    help="The class the --method maps explain: each image's predicted "
    "class, its true label, or one class index for every image.",
)
@task_option
@image_size_option
@input_scale_option
@devices_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N images.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(),
    default="maps.npz",
    show_default=True,
    help="An .npz file (built in memory: for small data), or a folder (a "
    "name without a suffix, or ending in /) for one .npy per map written as "
    "it is made.",
)
@shard_options("batches", with_dask=False)
@model_factory_option
@unsafe_load_option
@import_option
@user_errors
def maps_command(
    model_path,
    data_source,
    output,
    devices,
    model_factory,
    unsafe_load,
    **options,
):
    """Write MODEL's attention maps (and CAMs) for a dataset.

    --output NAME.npz: one file holding, for each layer i, 'map_i'
    (N, h, w) float32 and its path in 'layer_names'; for each
    channel-attention module (squeeze-and-excitation gate) i, 'channel_i'
    (N, C) weights and its path in 'channel_layer_names'; 'labels',
    'predictions', 'class_names'; for each --method NAME (or --grad-cam)
    also 'NAME' (N, h, w) for --cam-class, 'NAME_layer' and 'NAME_class'.
    --method channel_weighted writes channel-weighted activation maps.

    --output FOLDER (no suffix, or ending in /): the same arrays as
    map_i.npy, NAME.npy, predictions.npy and labels.npy, written batch by
    batch (flat memory), then manifest.json (layers, methods, shapes, class
    names, input scale; a folder without it is incomplete). The folder must
    be new, empty or an earlier maps folder (replaced).

    --shard-index I --parts DIR: shard I's images only (whole batches),
    into DIR/shard-IIIII-of-NNNNN; then `explain-attn merge DIR --output
    FOLDER` writes the maps folder of a single run, byte for byte.

    Images are read in batches, resized (--image-size), given the model's
    channels (gray repeated into RGB, or RGB made gray) and its input scale
    (--input-scale); what was assumed is printed. A model without attention
    layers needs a --method.
    """
    from explain_attn.devices import make_strategy, strategy_scope
    from explain_attn.explanations.export import (
        check_cam_class,
        check_output,
        export_maps,
    )
    from explain_attn.explanations.inputs import open_for_model

    job = _shard_job(options, model_path, data_source)
    if job is None:
        check_output(output)
    cam_class = check_cam_class(options["cam_class"])
    strategy = make_strategy(devices)
    with strategy_scope(strategy):
        state = _loaded(model_path, unsafe_load, model_factory)
    source, scale = open_for_model(
        state,
        data_source,
        split=options["split"],
        image_size=options["image_size"],
        limit=options["limit"],
        input_scale=options["input_scale"],
    )
    click.echo(scale.note)
    summary = export_maps(
        state,
        source,
        None if job else output,
        layers=list(options["layer_names"]) or None,
        methods=options["methods"],
        cam_layer=options["cam_layer"],
        cam_class=cam_class,
        with_grad_cam=options["with_grad_cam"],
        batch_size=options["batch_size"],
        input_scale=scale.scale,
        strategy=strategy,
        task=options["task"],
        shard=job,
    )
    lines = [f"Note: {note}." for note in source.notes]
    lines += [f"{path}: {shape}" for path, shape in summary.items()]
    click.echo("\n".join([*lines, f"Part: {job.folder}" if job else output]))


def _loaded(model_path, unsafe_load, model_factory):
    """The `explain_attn.graph.ModelState` of the loaded model, built once
    for the command."""
    from explain_attn.graph import model_state
    from explain_attn.models.saving import load_model

    return model_state(
        load_model(model_path, safe_mode=not unsafe_load, factory=model_factory)
    )


def _shard_job(options, model_path, data_source):
    """The `explain_attn.sharding.ShardJob` of ``--shard-index`` (``None``
    for a whole run), which records the command's options; takes the
    sharding options out of ``options``."""
    job = sharding(
        options.pop("num_shards"),
        options.pop("shard_index"),
        options.pop("parts"),
        with_dask=False,
    ).get("shard")
    if job is None:
        return None
    run = {"model_path": model_path, "data_source": data_source}
    for name, value in options.items():
        run[name] = list(value) if isinstance(value, tuple) else value
    return dataclasses.replace(job, run=run)
