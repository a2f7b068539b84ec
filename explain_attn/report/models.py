"""The models a report compares, and how they are loaded."""

import dataclasses
from pathlib import Path

import keras

from explain_attn.explanations.inputs import (
    SCALE_FROM_UNIT,
    resolve_input_scale,
)
from explain_attn.graph import model_state
from explain_attn.models.saving import load_model

__all__ = ["ReportModel", "in_unit_scale", "load_report_models"]


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
        input_note: How images are fed to it, when not as loaded ([0, 1]).
        state: The model's `explain_attn.graph.ModelState` (its graph,
            attention modules and compiled functions), built on first use
            and passed by every section to what it calls: one per model
            and report.
    """

    key: str
    role: str
    name: str
    model: object
    file: str | None = None
    architecture: str | None = None
    training: dict | None = None
    input_note: str | None = None
    _state: object = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def state(self):
        """The `ModelState` of ``model`` (again when ``model`` changes)."""
        if self._state is None or self._state.model is not self.model:
            self._state = model_state(self.model)
        return self._state


def load_report_models(
    attention_paths,
    baseline_path,
    *,
    safe_mode,
    say,
    attention_factory=None,
    baseline_factory=None,
    input_scale=None,
):
    """Loads the attention models and the baseline from ``.keras`` files.

    A ``.weights.h5`` file is built by ``attention_factory`` (every
    attention model) or ``baseline_factory`` (``"module:function"``, see
    `explain_attn.models.saving.load_model`). A model that takes another
    scale than [0, 1] (``input_scale``, or inferred from its own layers,
    see `explain_attn.explanations.inputs.resolve_input_scale`) is wrapped
    by `in_unit_scale`.

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
    for entry in models:
        scale = resolve_input_scale(entry.state, input_scale)
        if scale.scale != "unit" or scale.chosen:
            say(f"{entry.name}: {scale.note}")
            entry.input_note = scale.note
        entry.model = in_unit_scale(entry.model, scale.scale)
    return models


def in_unit_scale(model, scale):
    """``model`` fed with [0, 1] images, as the report's data comes.

    The report reads every model's images once, in [0, 1]; a model that
    takes bytes (0-255) or [-1, 1] is called inside a new model whose first
    layer, ``explain_attn_input_scale``, brings the images into its scale.
    Its layers then sit under the model's name (``name/layer`` paths).

    Returns:
        ``model`` itself for ``"unit"``; else the wrapping model.
    """
    if scale == "unit":
        return model
    factor, offset = SCALE_FROM_UNIT[scale]
    inputs = keras.Input(tuple(model.inputs[0].shape[1:]))
    scaled = keras.layers.Rescaling(
        factor, offset, name="explain_attn_input_scale"
    )(inputs)
    return keras.Model(inputs, model(scaled), name=f"{model.name}_scaled")
