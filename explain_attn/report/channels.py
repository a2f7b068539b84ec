"""The report's channel-attention section: weights per channel, no fake map.

A channel gate (squeeze-and-excitation) gives each image one weight per
channel, ``(N, C)``. There is no spatial map to score, so the report shows
what the weights do instead: how concentrated they are (their entropy),
which channels each class turns up (per-class mean weights, a heatmap) and
how much the classes differ (cosine similarity of the per-class means).
"""

import numpy as np

import explain_attn.report.figures as figures
from explain_attn.attention.discovery import attention_module
from explain_attn.devices import run_replicated
from explain_attn.explanations.attention import ChannelWeights
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import batches, check_model_images
from explain_attn.models.lookup import channel_module_names
from explain_attn.options import RunOptions
from explain_attn.report.contributions import (
    Contributor,
    Part,
    block_sum,
    chunk_length,
)
from explain_attn.report.drawing import Drawing
from explain_attn.report.evaluate import batch_size_for, chunk_size_for
from explain_attn.report.section import Section

__all__ = [
    "ChannelsSection",
    "ChannelStatistics",
    "channel_entropy",
    "channel_section",
    "class_similarity",
]


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


def _functions(state, paths):
    return {
        path: compiled(
            state, ("channel", path), lambda p=path: ChannelWeights(state, p)
        )
        for path in paths
    }


def _weights(state, functions, images, options):
    """Path -> ``(n, C)`` weights of ``images``, the options' batch size
    at a time (each batch split across the replicas of its strategy)."""
    chunks = {path: [] for path in functions}
    images = check_model_images(state, images)
    for batch in batches(images, options.batch_size):
        for path, function in functions.items():
            weights = run_replicated(options.strategy, function, batch)
            chunks[path].append(np.asarray(weights))
    return {path: np.concatenate(parts) for path, parts in chunks.items()}


class _Module:
    """What the section needs of one module's ``(N, C)`` weights:
    per-image entropies, per-class sums and counts."""

    def __init__(self, num_classes, entropy, sums, counts):
        self.num_classes = num_classes
        self.entropy = [entropy]
        self.sums = sums
        self.counts = counts


def _module_part(weights, labels, num_classes):
    """Rows ``entropy``; blocks ``sums`` ``(1, K, C)`` and ``counts``
    ``(1, K)`` of one chunk's weights of one module."""
    weights = np.asarray(weights, np.float64)
    sums = np.zeros((num_classes, weights.shape[1]))
    np.add.at(sums, labels, weights)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    return {"entropy": channel_entropy(weights)}, {
        "sums": sums[None],
        "counts": counts[None],
    }


def _module_row(state, path, module):
    entropy = np.concatenate(module.entropy)
    finite = entropy[np.isfinite(entropy)]
    present = [k for k in range(module.num_classes) if module.counts[k] > 0]
    means = module.sums[present] / module.counts[present, None]
    attention = attention_module(state, path)
    return {
        "layer": path,
        "kind": attention.kind.name,
        "description": attention.kind.description,
        "channels": int(module.sums.shape[1]),
        "value_range": str(attention.value_range or ""),
        "found_by": attention.found_by,
        "mean_weight": float(
            module.sums.sum() / (module.counts.sum() * module.sums.shape[1])
        ),
        "entropy": {
            "mean": float(finite.mean()) if len(finite) else float("nan"),
            "std": float(finite.std()) if len(finite) else float("nan"),
            "n": int(len(finite)),
        },
        "class_similarity": class_similarity(means),
        "class_means": means.tolist(),
        "classes": present,
    }


class ChannelStatistics(Contributor):
    """An `evaluate` contributor: the channel weights of every attention
    model's channel modules, reduced chunk by chunk to what its result
    (`reduce`: the section's JSON-ready dict, see `channel_section`, or
    ``None`` when no model has channel modules) reports (no ``(N, C)``
    array is kept).

    Args:
        models: The report's `explain_attn.report.models.ReportModel` list.
        num_classes: Number of classes of the labels.
        layers: ``None`` for every channel module, or paths of them.
        batch_size: The most images per forward pass (fewer for large
            images: `explain_attn.report.evaluate.batch_size_for`).
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each forward pass.
    """

    def __init__(
        self,
        models,
        *,
        num_classes,
        layers=None,
        batch_size=128,
        strategy=None,
    ):
        super().__init__()
        self.batch_size = batch_size
        self.strategy = strategy
        self.num_classes = num_classes
        self._entries = []
        for entry in models:
            if entry.role != "attention":
                continue
            paths = channel_module_names(entry.state)
            if layers is not None:
                paths = [p for p in paths if p in layers]
            if paths:
                functions = _functions(entry.state, paths)
                self._entries.append((entry, functions, paths))

    def __bool__(self):
        return bool(self._entries)

    def contribute(self, start, images, maps=None, labels=None, masks=None):
        """Rows ``(model key, path, "entropy")``; blocks ``(model key,
        path, "sums" | "counts")``: per-class sums and counts."""
        part = Part(start, start + chunk_length(images, labels))
        if not self._entries:
            return part
        labels = np.asarray(labels, np.int64)
        batch_size = batch_size_for(images.shape[1:], self.batch_size)
        for entry, functions, paths in self._entries:
            weights = _weights(
                entry.state,
                functions,
                images,
                RunOptions(batch_size=batch_size, strategy=self.strategy),
            )
            for path in paths:
                rows, blocks = _module_part(
                    weights[path], labels, self.num_classes
                )
                for name, value in rows.items():
                    part.rows[entry.key, path, name] = value
                for name, value in blocks.items():
                    part.blocks[entry.key, path, name] = value
        return part

    def _module(self, total, key, path):
        return _Module(
            self.num_classes,
            total.rows[key, path, "entropy"],
            block_sum(total.blocks[key, path, "sums"]),
            block_sum(total.blocks[key, path, "counts"]),
        )

    def reduce(self, total):
        if total is None:
            return None
        results = [
            {
                "model": entry.key,
                "name": entry.name,
                "modules": [
                    _module_row(
                        entry.state, path, self._module(total, entry.key, path)
                    )
                    for path in paths
                ],
            }
            for entry, _, paths in self._entries
        ]
        return {"models": results} if results else None


def channel_section(models, test, *, layers=None, batch_size=128):
    """Channel weights of every attention model's channel modules.

    The report computes them during its evaluation pass
    (`ChannelStatistics` as an observer); this reads ``test`` once for
    them alone.

    Args:
        models: The report's `explain_attn.report.models.ReportModel` list.
        test: The test data: an `explain_attn.data.Dataset` or a streamed
            source (``batches``, ``class_names``, ``image_shape``).
        layers: ``None`` for every channel module, or paths of them.
        batch_size: Images per forward pass.

    Returns:
        A JSON-ready dict with ``models`` (one per attention model with
        channel modules: ``model``, ``name``, ``modules``, each with
        ``layer``, ``kind``, ``channels``, ``value_range``, ``found_by``,
        ``mean_weight``, ``entropy`` (``mean``, ``std``, ``n``),
        ``class_similarity``, ``class_means`` ``(K, C)`` and ``classes``),
        or ``None`` when no model has channel modules.
    """
    statistics = ChannelStatistics(
        models,
        num_classes=len(test.class_names),
        layers=layers,
        batch_size=batch_size,
    )
    if not statistics:
        return None
    start = 0
    chunk = chunk_size_for(test.image_shape, batch_size=batch_size)
    for images, labels, _ in test.batches(chunk):
        statistics(start, images, None, labels)
        start += len(images)
    return statistics.result


class ChannelsSection(Section):
    """Channel attention (squeeze-and-excitation gates): weights per class,
    observed during the pass (`ChannelStatistics`)."""

    name = "channels"
    partial = "_channels.html"

    def contributors(self, run):
        return {
            "channels": ChannelStatistics(
                run.models,
                num_classes=len(run.test.class_names),
                layers=run.channel_layers,
                batch_size=run.batch_size,
                strategy=run.strategy,
            )
        }

    def compute(self, run, observed, data):
        return observed["channels"]

    def keys(self, result, data):
        return {"channels": result}  # ``null`` without channel modules.

    def shown(self, report):
        return bool(report.description.channels)

    def figures(self, results, attachments, data):
        section = results["channels"]
        if not section:
            return {}
        class_names = results["run"]["dataset"]["class_names"]
        return {
            result["model"]: Drawing(
                figures.channel_figure, (result["modules"], class_names)
            )
            for result in section["models"]
        }

    def context(self, report):
        drawn = report.figures["channels"]
        section = report.description.channels or {"models": []}
        return {
            "channel_figures": {
                result["model"]: drawn[result["model"]]
                for result in section["models"]
            }
        }
