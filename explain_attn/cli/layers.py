"""`explain-attn layers`: what a model holds for explanation."""

import click

from explain_attn.cli.common import (
    import_option,
    model_factory_option,
    task_option,
    unsafe_load_option,
    user_errors,
)

SHOWN_CANDIDATES = 5
"""Grad-CAM candidates listed without ``--all`` (the last ones)."""


@click.command("layers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every Grad-CAM candidate, not only the last "
    f"{SHOWN_CANDIDATES}.",
)
@task_option
@model_factory_option
@unsafe_load_option
@import_option
@user_errors
def layers_command(model_path, show_all, task, model_factory, unsafe_load):
    """List MODEL's attention modules and the layers usable for Grad-CAM.

    MODEL is a '.keras' file (or a '.weights.h5' file with
    --model-factory). Attention is found by structure, nested models
    included: layers of explain-attn, gates multiplied into features
    (spatial (H, W, 1), channel (1, 1, C) as in squeeze-and-excitation,
    axis (H, 1, C) and (1, W, C) as in coordinate attention), written with
    layers or keras.ops, and MultiHeadAttention over a feature map. Paths
    are 'outer/inner', which every other command accepts.

    A segmentation model (one prediction per pixel) is explained by
    Seg-Grad-CAM; its default layer (*) is the decoder's last one before
    the logits; give another with --cam-layer (a coarser decoder layer
    gives a coarser map).
    """
    from explain_attn.explanations.seg_cam import default_decoder_layer
    from explain_attn.graph import model_state
    from explain_attn.models.lookup import (
        default_cam_layer,
        describe_layers,
    )
    from explain_attn.models.preprocessing import describe_input
    from explain_attn.models.saving import load_model
    from explain_attn.models.task import SEGMENTATION, check_task

    model = load_model(
        model_path, safe_mode=not unsafe_load, factory=model_factory
    )
    state = model_state(model)  # The model's graph, built once.
    task = check_task(state, task)
    rows = describe_layers(state)
    expectation = describe_input(state)
    click.echo(f"Model {model.name!r}: {model.count_params():,} parameters")
    click.echo(f"Task: {_task_line(state, task)}")
    click.echo(f"Input: {_input_line(expectation)}")
    modules = [row["module"] for row in rows if row["module"] is not None]
    click.echo(f"Attention modules: {_counts(modules)}")
    if modules:
        table = [("path", "kind", "shape", "range", "found by")]
        table += [_module_cells(module) for module in modules]
        for line in _table(table):
            click.echo(f"  {line}")
    candidates = [row for row in rows if row["cam_candidate"]]
    segmentation = task == SEGMENTATION
    method = "Seg-Grad-CAM" if segmentation else "Grad-CAM"
    default = None
    if candidates:
        default = (
            default_decoder_layer if segmentation else default_cam_layer
        )(state)
    shown = candidates if show_all else candidates[-SHOWN_CANDIDATES:]
    shown = [r for r in candidates if r["path"] == default and r not in shown]
    shown += candidates if show_all else candidates[-SHOWN_CANDIDATES:]
    click.echo(
        f"{method} candidates (maps of at least 2x2): {len(candidates)}"
        + (
            f"; the last {min(len(candidates), SHOWN_CANDIDATES)} and the "
            "default (--all for every one)"
            if len(shown) < len(candidates)
            else ""
        )
        + ("; * = default" if candidates else "")
    )
    table = [
        (
            ("* " if row["path"] == default else "  ") + row["path"],
            row["class_name"],
            _shape(row["output_shape"][1:]),
        )
        for row in shown
    ]
    for line in _table(table):
        click.echo(line)


def _task_line(state, task):
    # The flat graph's output: a subclassed model has no ``outputs``.
    shape = tuple(state.graph.outputs[0].shape[1:])
    if task == "classification":
        return f"classification (one prediction per image, {shape})"
    return (
        f"segmentation (one prediction per pixel, {shape}); the baseline's "
        "explanation is Seg-Grad-CAM"
    )


def _input_line(expectation):
    size = "x".join(
        "?" if value is None else str(value)
        for value in (expectation.height, expectation.width)
    )
    channels = expectation.channels
    return (
        f"{size} pixels, {'?' if channels is None else channels} "
        f"channel(s), scale {expectation.scale or 'unknown'}. "
        f"{expectation.note}"
    )


def _counts(modules):
    if not modules:
        return "none found"
    counts = {}
    for module in modules:
        counts[module.kind.name] = counts.get(module.kind.name, 0) + 1
    listed = ", ".join(f"{count} {name}" for name, count in counts.items())
    return f"{len(modules)} ({listed})"


def _module_cells(module):
    return (
        module.path,
        module.kind.name,
        _shape(module.shape) if module.shape else "?",
        str(module.value_range) if module.value_range else "?",
        module.found_by
        + (f" at {module.applied_at}" if module.applied_at else ""),
    )


def _shape(shape):
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


def _table(rows):
    """Lines of ``rows`` (tuples of strings) in aligned columns."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]
