"""`explain-attn compare`: two reports side by side, and CI gates."""

import sys

import click

from explain_attn.cli.common import user_errors


@click.command("compare")
@click.argument("report_a", type=click.Path(dir_okay=False))
@click.argument("report_b", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the comparison as an HTML page (e.g. diff.html).",
)
@click.option(
    "--fail-under",
    "fail_under",
    multiple=True,
    metavar="NAME=VALUE",
    help="Exit 1 when B's NAME (e.g. attention.accuracy) is below VALUE; "
    "repeat for more.",
)
@click.option(
    "--fail-if-worse",
    "fail_if_worse",
    multiple=True,
    metavar="NAME",
    help="Exit 1 when B's NAME is worse than A's beyond noise (the 95% "
    "interval of B - A lies below 0); repeat for more.",
)
@user_errors
def compare_command(report_a, report_b, output, fail_under, fail_if_worse):
    """Compare two report.json files (A, then B) and gate a CI step.

    Prints every quantity both reports share (model accuracies, each
    explanation's metrics) as A, B and B - A with a 95% interval, paired
    per image when both ran on the same test images (equal data
    fingerprints), unpaired otherwise. Exit 0 when every gate passes, 1
    when one fails (one line per failed gate on stderr), 2 for bad input.
    """
    from explain_attn.report.compare import (
        check_gates,
        compare_reports,
        load_report,
        parse_threshold,
    )
    from explain_attn.report.render import comparison_html
    from explain_attn.writing import atomic_path, check_writable

    thresholds = [parse_threshold(text) for text in fail_under]
    if output is not None:
        if not output.lower().endswith((".html", ".htm")):
            raise ValueError(
                f"--output must end in '.html'. Received: --output {output}"
            )
        check_writable(output)
    first, second = load_report(report_a), load_report(report_b)
    comparison = compare_reports(first, second)
    # Unknown gate names are bad input (exit 2), found before any output.
    failed = check_gates(
        comparison, fail_under=thresholds, fail_if_worse=fail_if_worse
    )
    click.echo(comparison["reason"])
    for row in comparison["rows"]:
        difference = row["difference"]
        click.echo(
            f"{row['name']}: {row['a']:.4f} -> {row['b']:.4f} "
            f"({difference['mean_difference']:+.4f} "
            f"[{difference['ci_low']:+.4f}, {difference['ci_high']:+.4f}])"
        )
    if output is not None:
        html = comparison_html(comparison, [report_a, report_b])
        with atomic_path(output) as temporary:
            temporary.write_text(html, encoding="utf-8")
        click.echo(str(output))
    if failed:
        click.echo("Gate failed: " + "; ".join(failed), err=True)
        sys.exit(1)
