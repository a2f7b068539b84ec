"""The report's channel-attention section: weights per channel, no fake map.

A channel gate (squeeze-and-excitation) gives each image one weight per
channel, ``(N, C)``. There is no spatial map to score, so the report shows
what the weights do instead: how concentrated they are (their entropy),
which channels each class turns up (per-class mean weights, a heatmap) and
how much the classes differ (cosine similarity of the per-class means).
"""

import base64
import io

import numpy as np
from matplotlib.figure import Figure

from explain_attn.attention.discovery import attention_module
from explain_attn.devices import run_replicated
from explain_attn.explanations.attention import ChannelWeights
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import batches, check_model_images
from explain_attn.explanations.lookup import channel_module_names

__all__ = [
    "HEATMAPS",
    "channel_entropy",
    "channel_figures",
    "channel_section",
    "class_similarity",
]

HEATMAPS = 6
"""Modules per model shown as heatmaps (evenly spaced through the model)."""


def channel_entropy(weights):
    """Normalised entropy of each image's channel weights.

    Args:
        weights: ``(N, C)`` non-negative weights, ``C >= 2``.

    Returns:
        ``(N,)`` float64 in [0, 1]: 1 when all channels weigh the same, 0
        when one channel has all the weight.

    Notes:
        ``p = w / sum(w)``, ``H = -sum p log p / log C`` (``0 log 0 = 0``).
        An image whose weights are all zero has no distribution: NaN.
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    share = weights / safe
    logs = np.log(np.where(share > 0, share, 1.0))
    entropy = -(share * logs).sum(axis=1) / np.log(weights.shape[1])
    return np.where(total[:, 0] > 0, entropy, np.nan)


def class_similarity(means):
    """Mean cosine similarity between the rows of ``means`` (one per class).

    Args:
        means: ``(K, C)`` per-class mean weights, ``K >= 2``.

    Returns:
        A float in [0, 1] for non-negative weights (1: every class weighs
        the channels alike), or NaN for fewer than two classes or a zero
        row.
    """
    means = np.asarray(means, dtype=np.float64)
    if len(means) < 2:
        return float("nan")
    norms = np.linalg.norm(means, axis=1)
    if np.any(norms == 0):
        return float("nan")
    unit = means / norms[:, None]
    cosine = unit @ unit.T
    upper = np.triu_indices(len(means), k=1)
    return float(cosine[upper].mean())


def _weights(model, paths, images, batch_size, strategy):
    functions = {
        path: compiled(
            model, ("channel", path), lambda p=path: ChannelWeights(model, p)
        )
        for path in paths
    }
    chunks = {path: [] for path in paths}
    for batch in batches(check_model_images(model, images), batch_size):
        for path, function in functions.items():
            chunks[path].append(run_replicated(strategy, function, batch))
    return {path: np.concatenate(chunks[path]) for path in paths}


def _module_row(model, path, weights, labels, num_classes):
    module = attention_module(model, path)
    entropy = channel_entropy(weights)
    finite = entropy[np.isfinite(entropy)]
    present = [k for k in range(num_classes) if np.any(labels == k)]
    means = np.stack([weights[labels == k].mean(axis=0) for k in present])
    return {
        "layer": path,
        "kind": module.kind.name,
        "description": module.kind.description,
        "channels": int(weights.shape[1]),
        "value_range": str(module.value_range or ""),
        "found_by": module.found_by,
        "mean_weight": float(weights.mean()),
        "entropy": {
            "mean": float(finite.mean()) if len(finite) else float("nan"),
            "std": float(finite.std()) if len(finite) else float("nan"),
            "n": int(len(finite)),
        },
        "class_similarity": class_similarity(means),
        "class_means": means.tolist(),
        "classes": present,
    }


def channel_section(
    models, test, *, layers=None, batch_size=128, strategy=None
):
    """Channel weights of every attention model's channel modules.

    Args:
        models: The report's `explain_attn.report.models.ReportModel` list.
        test: The test `explain_attn.data.Dataset`.
        layers: ``None`` for every channel module, or paths of them.
        batch_size: Images per forward pass.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each forward pass.

    Returns:
        A JSON-ready dict with ``models`` (one per attention model with
        channel modules: ``model``, ``name``, ``modules``, each with
        ``layer``, ``kind``, ``channels``, ``value_range``, ``found_by``,
        ``mean_weight``, ``entropy`` (``mean``, ``std``, ``n``),
        ``class_similarity``, ``class_means`` ``(K, C)`` and ``classes``),
        or ``None`` when no model has channel modules.
    """
    labels = np.asarray(test.labels)
    num_classes = len(test.class_names)
    results = []
    for entry in models:
        if entry.role != "attention":
            continue
        paths = channel_module_names(entry.model)
        if layers is not None:
            paths = [p for p in paths if p in layers]
        if not paths:
            continue
        weights = _weights(
            entry.model, paths, test.images, batch_size, strategy
        )
        rows = [
            _module_row(entry.model, p, weights[p], labels, num_classes)
            for p in paths
        ]
        results.append(
            {"model": entry.key, "name": entry.name, "modules": rows}
        )
    return {"models": results} if results else None


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def channel_figures(section, class_names):
    """Per-class mean-weight heatmaps: model key -> ``data:`` URI or None."""
    if not section:
        return {}
    figures = {}
    for result in section["models"]:
        modules = result["modules"]
        chosen = np.unique(
            np.linspace(0, len(modules) - 1, min(HEATMAPS, len(modules)))
            .round()
            .astype(int)
        )
        figure = Figure(
            figsize=(8, 1.6 * len(chosen) + 0.4), layout="constrained"
        )
        for row, index in enumerate(chosen, start=1):
            module = modules[index]
            axes = figure.add_subplot(len(chosen), 1, row)
            image = axes.imshow(
                np.asarray(module["class_means"]), aspect="auto",
                cmap="viridis", interpolation="nearest",
            )  # fmt: skip
            axes.set_yticks(range(len(module["classes"])))
            axes.set_yticklabels([class_names[k] for k in module["classes"]])
            axes.set_title(module["layer"], fontsize=8)
            figure.colorbar(image, ax=axes, fraction=0.02)
        axes.set_xlabel("channel")
        figures[result["model"]] = _png(figure)
    return figures
