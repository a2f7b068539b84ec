"""`explain-attn merge`: the report of a sharded run, from its parts."""

import sys

import click

from explain_attn.cli.common import devices_option, quiet_option, user_errors
from explain_attn.cli.report import outputs, single_threaded_blas, write_report


@click.command("merge")
@click.argument("parts", type=click.Path(file_okay=False))
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML report; the numbers go beside it as .json.",
)
@devices_option
@quiet_option
@single_threaded_blas
@user_errors
def merge_command(parts, output, devices):
    """Merge the parts that `explain-attn report --shard-index I --parts
    PARTS` wrote into one report.

    Every shard of the run must have its part in PARTS; a missing,
    duplicated, truncated or foreign part (other models, data or settings)
    is refused. The models and data recorded in the parts are loaded again
    for the gallery and the faithfulness checks. The numbers are those of
    a single run. On a terminal, reading the parts and each faithfulness
    check show progress with the time left (--quiet: none). The last line
    printed is the report's path.
    """
    from explain_attn.devices import make_strategy
    from explain_attn.report.merge import merge_report

    output_path, json_path = outputs(output)
    report = merge_report(
        parts,
        log=click.echo,
        command_line=" ".join(["explain-attn", *sys.argv[1:]]),
        strategy=make_strategy(devices),
    )
    write_report(report, output_path, json_path)
