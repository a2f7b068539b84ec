"""The models a report compares, and how they are loaded."""

import dataclasses
from pathlib import Path

from explain_attn.models.saving import load_model

__all__ = ["ReportModel", "load_report_models"]


@dataclasses.dataclass
class ReportModel:
    """A model in a report.

    Attributes:
        key: Short unique key (``"attention"``, ``"baseline"``, or
            ``"attention_0"``... with several attention models).
        role: ``"attention"`` or ``"baseline"`` (the reference whose CAMs
            the attention maps are compared with).
        name: How the report names it (a file name or architecture).
        model: The `keras.Model`.
        file: The file it was loaded from, if any.
        architecture: The built-in architecture it was built from, if any.
        training: What is known of its training (a JSON-ready dict), if any.
    """

    key: str
    role: str
    name: str
    model: object
    file: str | None = None
    architecture: str | None = None
    training: dict | None = None


def load_report_models(
    attention_paths,
    baseline_path,
    *,
    safe_mode,
    say,
    attention_factory=None,
    baseline_factory=None,
):
    """Loads the attention models and the baseline from ``.keras`` files.

    A ``.weights.h5`` file is built by ``attention_factory`` (every
    attention model) or ``baseline_factory`` (``"module:function"``, see
    `explain_attn.models.saving.load_model`).

    Returns:
        A list of `ReportModel`: the attention models, then the baseline.
    """
    models = []
    several = len(attention_paths) > 1
    for index, path in enumerate(attention_paths):
        models.append(
            ReportModel(
                key=f"attention_{index}" if several else "attention",
                role="attention",
                name=Path(path).name,
                model=load_model(
                    path, safe_mode=safe_mode, factory=attention_factory
                ),
                file=str(path),
            )
        )
        say(f"Attention model: {path} (loaded, safe_mode={safe_mode})")
    models.append(
        ReportModel(
            key="baseline",
            role="baseline",
            name=Path(baseline_path).name,
            model=load_model(
                baseline_path, safe_mode=safe_mode, factory=baseline_factory
            ),
            file=str(baseline_path),
        )
    )
    say(f"Baseline model: {baseline_path} (loaded, safe_mode={safe_mode})")
    return models
