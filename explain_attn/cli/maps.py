"""`explain-attn maps`: attention maps and CAMs of a dataset, to a file."""

import click

from explain_attn.cli.common import (
    image_size_option,
    import_option,
    layer_option,
    method_option,
    model_factory_option,
    unsafe_load_option,
    user_errors,
)


@click.command("maps")
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
@image_size_option
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
    type=click.Path(dir_okay=False),
    default="maps.npz",
    show_default=True,
    help="Where to write the maps (.npz).",
)
@model_factory_option
@unsafe_load_option
@import_option
@user_errors
def maps_command(
    model_path,
    data_source,
    split,
    layer_names,
    with_grad_cam,
    methods,
    cam_layer,
    cam_class,
    image_size,
    limit,
    batch_size,
    output,
    model_factory,
    unsafe_load,
):
    """Write MODEL's attention maps (and CAMs) for a dataset to an .npz.

    The file holds, for each layer i, 'map_i' (N, h, w) float32 and its
    path in 'layer_names'; for each channel-attention module (squeeze-and-
    excitation gate) i, 'channel_i' (N, C) weights and its path in
    'channel_layer_names'; 'labels', 'predictions', 'class_names'; for each
    --method NAME (or --grad-cam) also 'NAME' (N, h, w) for --cam-class,
    'NAME_layer' and 'NAME_class'. --method channel_weighted writes the
    channel-weighted activation maps of the channel modules. A model
    without attention needs a --method.
    """
    from explain_attn.data import load_dataset
    from explain_attn.explanations.export import check_cam_class, export_maps
    from explain_attn.models.saving import load_model

    if not output.endswith(".npz"):
        raise ValueError(
            f"--output must end in '.npz'. Received: --output {output}"
        )
    cam_class = check_cam_class(cam_class)
    model = load_model(
        model_path, safe_mode=not unsafe_load, factory=model_factory
    )
    dataset = load_dataset(
        data_source, split=split, image_size=image_size, limit=limit
    )
    summary = export_maps(
        model,
        dataset,
        output,
        layers=list(layer_names) or None,
        methods=methods,
        cam_layer=cam_layer,
        cam_class=cam_class,
        with_grad_cam=with_grad_cam,
        batch_size=batch_size,
    )
    for path, shape in summary.items():
        click.echo(f"{path}: {shape}")
    click.echo(output)
