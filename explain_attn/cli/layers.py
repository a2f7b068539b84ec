"""`explain-attn layers`: what a model holds for explanation."""

import click

from explain_attn.cli.common import (
    import_option,
    unsafe_load_option,
    user_errors,
)


@click.command("layers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@unsafe_load_option
@import_option
@user_errors
def layers_command(model_path, unsafe_load):
    """List MODEL's attention layers and the layers usable for Grad-CAM.

    MODEL is a '.keras' file. Nested models are searched; their layers are
    shown as 'outer/inner' paths, which every other command accepts.
    """
    from explain_attn.explanations.lookup import (
        default_cam_layer,
        describe_layers,
    )
    from explain_attn.models.saving import load_model

    model = load_model(model_path, safe_mode=not unsafe_load)
    rows = describe_layers(model)
    attention = [r for r in rows if r["kind"] in ("attention", "gate")]
    channel = [r for r in rows if r["kind"] == "channel"]
    spatial = [r for r in rows if r["kind"] not in ("channel",)]
    click.echo(f"Model {model.name!r}: {model.count_params():,} parameters")
    click.echo("Attention layers (path, kind, class, output shape):")
    for row in attention or [None]:
        click.echo(_layer_line(row) if row else "  none")
    if channel:
        click.echo("Channel attention layers (weights per channel, no map):")
        for row in channel:
            click.echo(_layer_line(row))
    default = default_cam_layer(model) if spatial else None
    click.echo("4-D layers usable for Grad-CAM (* = default):")
    for row in spatial or [None]:
        if row is None:
            click.echo("  none")
        else:
            mark = "*" if row["path"] == default else " "
            click.echo(f"{mark}{_layer_line(row)[1:]}")


def _layer_line(row):
    shape = (
        "("
        + ", ".join(
            "None" if s is None else str(s) for s in row["output_shape"]
        )
        + ")"
    )
    return f"  {row['path']}  {row['kind']}  {row['class_name']}  {shape}"
