"""`explain-attn merge`: one run's output, from the parts of its shards."""

import sys

import click

from explain_attn.cli.common import devices_option, quiet_option, user_errors
from explain_attn.cli.report import outputs, single_threaded_blas, write_report


@click.command("merge")
@click.argument("parts", type=click.Path(file_okay=False))
@click.option(
    "--output",
    type=click.Path(),
    default=None,
    help="The HTML report (its numbers go beside it as .json) for a "
    "report's parts; the maps folder for maps' parts [default: report.html "
    "or maps/].",
)
@devices_option
@quiet_option
@single_threaded_blas
@user_errors
def merge_command(parts, output, devices):
    """Merge the parts that `explain-attn report` or `explain-attn maps`
    wrote with --shard-index I --parts PARTS into one report or maps
    folder (which one, the parts say).

    Every shard of the run must have its part in PARTS; a missing,
    duplicated, truncated or foreign part (other models, data or settings)
    is refused. For a report, the models and data recorded in the parts
    are loaded again for the gallery and the faithfulness checks; maps are
    copied from the parts. The result is that of a single run. On a
    terminal, reading a report's parts and each faithfulness check show
    progress with the time left (--quiet: none). The last line printed is
    the result's path.
    """
    from explain_attn.sharding import parts_kind

    if parts_kind(parts) == "maps":
        from explain_attn.explanations.map_parts import merge_maps

        output = output or "maps/"
        manifest = merge_maps(parts, output)
        click.echo(
            f"{len(manifest['shards'])} parts, {manifest['count']} images, "
            f"{len(manifest['maps'])} maps"
        )
        click.echo(output)
        return
    from explain_attn.devices import make_strategy
    from explain_attn.report.drawing import drawing_process
    from explain_attn.report.merge import merge_report

    output_path, json_path = outputs(output or "report.html")
    strategy = make_strategy(devices)
    # A helper process draws the figures while the report computes.
    with drawing_process() as drawer:
        report = merge_report(
            parts,
            log=click.echo,
            command_line=" ".join(["explain-attn", *sys.argv[1:]]),
            strategy=strategy,
            drawer=drawer,
        )
        write_report(report, output_path, json_path)
