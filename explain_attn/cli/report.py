"""`explain-attn report`: the HTML report comparing attention with CAMs."""

import sys
from pathlib import Path

import click

from explain_attn.cli.common import (
    image_size_option,
    import_option,
    input_scale_option,
    layer_option,
    method_option,
    seed_option,
    unsafe_load_option,
    user_errors,
)


@click.command("report")
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
    "--no-faithfulness",
    is_flag=True,
    help="Skip the Faithfulness section (attention interventions, "
    "randomisation checks, deletion curves) when time matters.",
)
@click.option(
    "--spurious-correlation",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Demo on --data sample only: probability that a training image's "
    "background tint gives its class away; the test split stays clean.",
)
@input_scale_option
@unsafe_load_option
@import_option
@user_errors
def report_command(
    data_source,
    attention_models,
    baseline_model,
    layer_names,
    methods,
    cam_layer,
    cam_class,
    attention_factory,
    baseline_factory,
    epochs,
    num_examples,
    image_size,
    seed,
    output,
    no_faithfulness,
    spurious_correlation,
    input_scale,
    unsafe_load,
):
    """Compare attention maps with the baseline's CAMs in an HTML report.

    With no options, runs the demo offline: trains (or loads from the cache)
    a ConvNet and the same network with spatial attention on the bundled
    sample data, evaluates both on its test split, and writes report.html
    and report.json. The last line printed is the report's path.
    """
    from explain_attn.explanations.export import check_cam_class
    from explain_attn.models.saving import atomic_path, check_writable
    from explain_attn.report import report_from_sources, report_html, write_json

    output_path = Path(output)
    if output_path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"--output must end in '.html'. Received: --output {output}"
        )
    json_path = output_path.with_suffix(".json")
    check_writable(output_path)
    cam_class = check_cam_class(cam_class)
    report = report_from_sources(
        data_source,
        attention_models=attention_models,
        baseline_model=baseline_model,
        layers=list(layer_names) or None,
        methods=list(methods) or ["grad_cam"],
        cam_layer=cam_layer,
        cam_class=cam_class,
        attention_factory=attention_factory,
        baseline_factory=baseline_factory,
        epochs=epochs,
        num_examples=num_examples,
        image_size=image_size,
        seed=seed,
        safe_mode=not unsafe_load,
        input_scale=input_scale,
        command_line=" ".join(["explain-attn", *sys.argv[1:]]),
        log=click.echo,
        faithfulness=not no_faithfulness,
        spurious_correlation=spurious_correlation,
    )
    # Render first: an error or Ctrl-C while rendering writes nothing.
    html = report_html(report)
    write_json(report, json_path)
    with atomic_path(output_path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    click.echo(f"Numbers: {json_path}")
    click.echo(str(output_path))
