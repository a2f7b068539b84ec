"""Model-parameter randomisation checks (Adebayo et al., 2018).

A map that stays the same when the weights it is computed from are random
explains nothing about what the model learnt. The checks re-initialise the
weights of a clone of the model and compare the maps before and after.
"""

import functools
import math
import re

import keras
import numpy as np
from scipy.ndimage import uniform_filter

from explain_attn.devices import strategy_scope
from explain_attn.explanations.explanation import Explainer, Explanation
from explain_attn.explanations.inputs import (
    all_images,
    check_model_images,
    input_shape,
)
from explain_attn.explanations.methods import ATTENTION
from explain_attn.explanations.predict import predict_classes
from explain_attn.faithfulness.common import finite_median
from explain_attn.graph import flat_graph, model_state
from explain_attn.metrics import SpearmanReference
from explain_attn.models.lookup import default_cam_layer, resolve_layers
from explain_attn.options import RunOptions, check_choice

__all__ = [
    "CASCADE_UNITS",
    "FAILURE_THRESHOLD",
    "LAYERWISE_LIMIT",
    "MapSimilarity",
    "cascade_steps",
    "map_similarity",
    "randomization_check",
    "reinitialize_layer",
]

FAILURE_THRESHOLD = 0.9
"""A map fails a randomisation check when its median Spearman correlation
with the original stays above this."""


_ONES = ("gamma", "moving_variance")

LAYERWISE_LIMIT = 32
"""With ``cascade="auto"``, models with at most this many layers with
weights are re-initialised layer by layer, larger ones block by block."""

CASCADE_UNITS = ("auto", "layers", "blocks")
"""What one cascade step re-initialises (see `cascade_steps`)."""

BLOCK_NAME = re.compile(
    r"conv\d+_block\d+|stage_?\d+_[a-z]*block_?\d+|block_?\d+[a-z]?"
    r"|stack_?\d+",
    re.IGNORECASE,
)
"""The block part of a layer name, as `keras.applications` names them:
``conv4_block1_`` (ResNet, DenseNet), ``stage_2_block_0_`` (ConvNeXt),
``Stage_0_XBlock_0_`` (RegNet), ``block_16_`` (MobileNetV2), ``block3a_``
(EfficientNet), ``block1_`` (VGG, Xception), ``stack2``."""


def _initializer(layer, name, rank, seed):
    """The Keras initializer a fresh ``layer`` would use for weight ``name``.

    The layer's own ``<name>_initializer`` (``kernel_initializer``,
    ``bias_initializer``, ``gamma_initializer``, ...) with a new seed where
    it takes one; for weights without one (e.g. the perceptron of
    `ChannelAttention`), Glorot uniform for kernels of two or more
    dimensions, ones for ``gamma`` and ``moving_variance``, zeros otherwise:
    the values Keras layers start with.
    """
    own = getattr(layer, f"{name}_initializer", None)
    if isinstance(own, keras.initializers.Initializer):
        config = own.get_config()
        if "seed" in config:
            config["seed"] = seed
        return type(own).from_config(config)
    if rank >= 2:
        return keras.initializers.GlorotUniform(seed=seed)
    if name in _ONES:
        return keras.initializers.Ones()
    return keras.initializers.Zeros()


def reinitialize_layer(layer, rng):
    """Re-initialises every weight of ``layer`` in place, seeded.

    Each weight gets a draw of the Keras initializer a fresh layer would
    use (see `_initializer`), seeded from ``rng``: Glorot uniform kernels,
    zero biases, batch normalisation's ``gamma`` and ``moving_variance`` at
    one and ``beta`` and ``moving_mean`` at zero by default. Call it on a
    clone, never on the caller's model.

    Args:
        layer: A layer whose weights to overwrite.
        rng: A `numpy.random.Generator`; the seeds are drawn from it.
    """
    for variable in layer.weights:
        shape = tuple(int(size) for size in variable.shape)
        name = variable.name.split("/")[-1]
        seed = int(rng.integers(2**31 - 1))
        initializer = _initializer(layer, name, len(shape), seed)
        variable.assign(initializer(shape, dtype=variable.dtype))


def _weighted_taps(model):
    """Taps of the layers with weights, in call order (nested models opened)."""
    return [
        tap
        for tap in flat_graph(model).taps.values()
        # `keras.ops` calls in the graph are operations without weights.
        if isinstance(tap.layer, keras.layers.Layer)
        and tap.layer.weights
        and not isinstance(tap.layer, keras.Model)
        # A traced layer's weights are its parts', which are taps too.
        and not tap.opened
    ]


def _weighted_layers(model):
    """Paths and layers with weights, in call order (nested models opened)."""
    return [(tap.path, tap.layer) for tap in _weighted_taps(model)]


def _resolution(tap):
    shape = getattr(tap.output, "shape", None)
    return tuple(shape[1:3]) if shape is not None and len(shape) == 4 else None


def _block_keys(taps, own):
    """``(key, name)`` per tap: its block, its own step or its run."""
    keys, run, previous = [], 0, None
    for tap in taps:
        prefix, _, name = tap.path.rpartition("/")
        match = BLOCK_NAME.search(name)
        if tap.path in own:
            keys.append((("layer", tap.path), tap.path))
            previous = None
        elif match:
            block = f"{prefix}/{match.group()}" if prefix else match.group()
            keys.append((("block", block), block))
            previous = None
        else:
            current = (prefix, _resolution(tap))
            if current != previous:
                run, previous = run + 1, current
            keys.append((("run", run), None))
    return keys


def cascade_steps(model, unit="auto", own=()):
    """The cascade's steps in call order: ``[(name, [layer paths])]``.

    Args:
        model: A `keras.Model` (nested models are opened).
        unit: ``"layers"``: one step per layer with weights. ``"blocks"``:
            one step per block: the layers whose name holds the same block
            part (`BLOCK_NAME`, e.g. ``block_16_`` or ``conv4_block1_``,
            within the same nested model) form one step wherever they are
            called; each layer of ``own`` is a step of its own; and the
            remaining layers are grouped into runs of consecutive layers of
            the same nested model and output resolution (a non-spatial
            output, e.g. of the dense head, counts as a resolution of its
            own), so a backbone without block names is cut at its
            resolution changes. ``"auto"``: ``"layers"`` for models with at
            most `LAYERWISE_LIMIT` layers with weights, ``"blocks"`` above.
        own: Layer paths that must be steps of their own (the attention
            layers whose maps are checked).

    Returns:
        A list of ``(name, paths)``: the step's name (the layer path, the
        block, or ``"first … last"`` for a run) and the paths of its layers.
    """
    check_choice("unit", unit, CASCADE_UNITS)
    taps = _weighted_taps(model)
    if unit == "auto":
        unit = "layers" if len(taps) <= LAYERWISE_LIMIT else "blocks"
    if unit == "layers":
        return [(tap.path, [tap.path]) for tap in taps]
    groups = {}
    for tap, (key, name) in zip(taps, _block_keys(taps, set(own)), strict=True):
        groups.setdefault(key, [name, []])[1].append(tap.path)
    steps = []
    for name, paths in groups.values():
        if name is None:
            name = paths[0] if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"
        steps.append((name, paths))
    return steps


def _unit_scaled(maps):
    maps = np.asarray(maps, dtype=np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    span = high - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def map_similarity(original, changed):
    """Spearman correlation and SSIM of two maps of each image.

    Args:
        original: ``(N, H, W)`` maps before the change.
        changed: ``(N, H, W)`` maps after it, same images and size.

    Returns:
        ``(spearman, ssim)``, each ``(N,)`` float64. Spearman is
        `explain_attn.metrics.spearman`, except that a map that became
        constant counts as 0 (it lost all structure: a change); images whose
        *original* map is constant are NaN. SSIM is
        `skimage.metrics.structural_similarity` with ``data_range=1`` on the
        maps min-max scaled to [0, 1] (a constant map scales to zeros), with
        a window of 7 pixels or the largest odd size that fits (NaN below
        3 pixels), averaged over the window positions of each image.
    """
    original = np.asarray(original, dtype=np.float64)
    changed = np.asarray(changed, dtype=np.float64)
    if original.shape != changed.shape or original.ndim != 3:
        raise ValueError(
            "Expected two (N, H, W) arrays of the same shape. Received: "
            f"{original.shape} and {changed.shape}"
        )
    return MapSimilarity(original)(changed)


class MapSimilarity:
    """`map_similarity` against one set of original maps, prepared once.

    ``MapSimilarity(original)(changed)`` equals ``map_similarity(original,
    changed)`` to the bit. What depends on the original alone (its ranks,
    its min-max scaling, its SSIM window means) is computed once: the
    cascade compares one original with twenty-odd changed sets
    (`benchmarks/RESULTS.md`, issue 27, third round).

    Args:
        original: ``(N, H, W)`` maps before the change.
    """

    def __init__(self, original):
        original = np.asarray(original, dtype=np.float64)
        if original.ndim != 3:
            raise ValueError(
                f"Expected (N, H, W) maps. Received: shape {original.shape}"
            )
        self.original = original
        self._constant = np.ptp(original, axis=(1, 2)) == 0
        self._spearman = SpearmanReference(original)
        size = min(original.shape[1:])
        self._window = min(7, size if size % 2 else size - 1)
        self._ssim = None
        if self._window >= 3 and len(original):
            self._ssim = _SsimReference(_unit_scaled(original), self._window)

    def __call__(self, changed):
        """``(spearman, ssim)``, each ``(N,)`` float64 (`map_similarity`)."""
        original = self.original
        changed = np.asarray(changed, dtype=np.float64)
        if original.shape != changed.shape:
            raise ValueError(
                "Expected two (N, H, W) arrays of the same shape. Received: "
                f"{original.shape} and {changed.shape}"
            )
        constant_after = np.ptp(changed, axis=(1, 2)) == 0
        rho = self._spearman(changed)
        rho = np.where(constant_after & ~self._constant, 0.0, rho)
        rho = np.where(self._constant, np.nan, rho)
        if self._ssim is None:
            return rho, np.full(len(original), np.nan)
        full = self._ssim(_unit_scaled(changed))
        pad = (self._window - 1) // 2
        cropped = full[pad : full.shape[0] - pad, pad : full.shape[1] - pad]
        return rho, cropped.mean(axis=(0, 1))


class _SsimReference:
    """SSIM images ``(H, W, N)`` of an ``(N, H, W)`` stack in [0, 1]
    against others.

    `skimage.metrics.structural_similarity` (``data_range=1``, uniform
    ``window``, sample covariance, ``full=True``) of every image at once:
    its formula on each image, and the same arithmetic, so the values are
    identical to calling it with ``channel_axis=-1`` (one call per image).
    The first stack's window means are computed once.
    """

    def __init__(self, first, window):
        self.window = window
        self.first = np.moveaxis(first, 0, -1)
        self.cov_norm = window**2 / (window**2 - 1)
        self.ux = self._mean(self.first)
        self.mean_xx = self._mean(self.first * self.first)

    def _mean(self, values):  # Over each image's window, not across images.
        return uniform_filter(values, size=(self.window, self.window, 1))

    def __call__(self, second):
        first, second, mean = self.first, np.moveaxis(second, 0, -1), self._mean
        cov_norm, ux = self.cov_norm, self.ux
        uy = mean(second)
        vx = cov_norm * (self.mean_xx - ux * ux)
        vy = cov_norm * (mean(second * second) - uy * uy)
        vxy = cov_norm * (mean(first * second) - ux * uy)
        c1, c2 = 0.01**2, 0.03**2
        numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
        return numerator / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


class _Maps:
    """The clone's maps of the checked explanations, by their key."""

    def __init__(self, clone, explanations, classes, strategy):
        self.explanations = {
            e.method_key: Explanation(clone, e.method, e.layer)
            for e in explanations
        }
        self.explainer = Explainer(
            self.explanations.values(), "input", strategy=strategy
        )
        self.classes = classes

    def __call__(self, images, batch_size):
        maps = self.explainer(
            images, class_index=self.classes, batch_size=batch_size
        )
        return {name: maps[e] for name, e in self.explanations.items()}


def _similarities(original, current):
    """``{name: (median Spearman, median SSIM, per-image Spearman)}`` of
    ``current`` maps against ``original`` (`MapSimilarity` by name)."""
    result = {}
    for name, similarity in original.items():
        rho, ssim = similarity(current[name])
        result[name] = (finite_median(rho), finite_median(ssim), rho)
    return result


def _cascade(clone, compute, original, rng, steps):
    """Re-initialises the clone's steps from the output down, cumulatively
    (``clone``: its `ModelState`)."""
    by_path = dict(_weighted_layers(clone))
    order = steps[::-1]
    spearman_curves = {name: [1.0] for name in original}
    ssim_curves = {name: [1.0] for name in original}
    last = {}
    for _, paths in order:
        for path in paths:
            reinitialize_layer(by_path[path], rng)
        for name, (rho, ssim, per_image) in _similarities(
            original, compute()
        ).items():
            spearman_curves[name].append(rho)
            ssim_curves[name].append(ssim)
            last[name] = per_image
    single = all(len(paths) == 1 for _, paths in steps)
    return {
        "layers": [name for name, _ in order],
        "steps": [list(paths) for _, paths in order],
        "unit": "layers" if single else "blocks",
        "spearman_median": spearman_curves,
        "ssim_median": ssim_curves,
        "spearman_per_image": {
            name: np.asarray(last.get(name, []), float).tolist()
            for name in original
        },
    }, by_path


def _independent(model, clone, by_path, paths, compute, original, rng):
    """Re-initialises each attention layer alone, from the model's weights."""
    results = {}
    for path in paths:
        if path not in by_path:
            continue  # A gate computed by weightless operations.
        clone.set_weights(model.get_weights())
        reinitialize_layer(by_path[path], rng)
        results[path] = {
            name: {"spearman_median": rho, "ssim_median": ssim}
            for name, (rho, ssim, _) in _similarities(
                original, compute()
            ).items()
        }
    return results


def _run(model, clone, compute, paths, steps, seed, independent):
    """``(original maps, cascade, independent results)`` on the clone
    (its `ModelState`)."""
    original = compute()
    # Prepared once: every step's maps are compared with these.
    similar = {name: MapSimilarity(maps) for name, maps in original.items()}
    rng = np.random.default_rng(seed)
    cascade, by_path = _cascade(clone, compute, similar, rng, steps)
    results = (
        _independent(model, clone.model, by_path, paths, compute, similar, rng)
        if independent
        else {}
    )
    return original, cascade, results


def _checks(cascade, independent, threshold):
    checks = []
    for name, curve in cascade["spearman_median"].items():
        final = curve[-1]
        own = independent.get(name, {}).get(name)
        own_spearman = own["spearman_median"] if own else math.nan
        failed = (math.isfinite(final) and final > threshold) or (
            math.isfinite(own_spearman) and own_spearman > threshold
        )
        checks.append(
            {
                "map": name,
                "final_spearman_median": final,
                "final_ssim_median": cascade["ssim_median"][name][-1],
                "independent_spearman_median": own_spearman,
                "passed": not failed,
            }
        )
    return checks


def _clone(state, images, class_index, options):
    """A clone of the state's model (in the options' strategy's scope), and
    the classes its CAMs explain (``class_index``, else the predicted
    ones)."""
    model = state.model
    if class_index is None:
        class_index = predict_classes(
            state,
            images,
            batch_size=options.batch_size,
            strategy=options.strategy,
        )
    with strategy_scope(options.strategy):
        clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone, class_index


def _attention_paths(state, layers):
    """The layers to check; none when the model has no attention layer."""
    try:
        return resolve_layers(state, layers)
    except ValueError:
        if layers is not None:
            raise
        return []


def _checked(state, explanations, layers, grad_cam_layer, cam_methods):
    """The explanations to check: ``explanations``, else those that
    ``layers``, ``grad_cam_layer`` and ``cam_methods`` name."""
    if explanations is None:
        cam_layer = grad_cam_layer or default_cam_layer(state)
        return [
            *(
                Explanation(state, ATTENTION, path)
                for path in _attention_paths(state, layers)
            ),
            *(Explanation(state, method, cam_layer) for method in cam_methods),
        ]
    explanations = list(explanations)
    model = state.model
    if not explanations or any(e.model is not model for e in explanations):
        raise ValueError(
            "`explanations` must be explanations of `model`, at least one. "
            f"Received: explanations={[e.label for e in explanations]}"
        )
    return explanations


def _check_clone(state, checked, inputs, unit, independent, options):
    """``(original maps, cascade, independent results)`` of ``checked``
    (`Explanation` objects of the state's model) computed on a clone,
    which gets a `ModelState` of its own."""
    images, class_index = inputs
    clone, classes = _clone(state, images, class_index, options)
    clone = model_state(clone)
    paths = [e.layer for e in checked if e.is_attention]
    steps = cascade_steps(clone, unit, own=paths)
    maps = _Maps(clone, checked, classes, options.strategy)
    compute = functools.partial(maps, images, options.batch_size)
    return _run(
        state.model, clone, compute, paths, steps, options.seed, independent
    )


def randomization_check(
    model,
    images,
    *,
    explanations=None,
    layers=None,
    grad_cam_layer=None,
    class_index=None,
    seed=0,
    batch_size=128,
    threshold=FAILURE_THRESHOLD,
    independent=True,
    cam_methods=("grad_cam",),
    cascade="auto",
    strategy=None,
):
    """Model-parameter randomisation test (Adebayo et al., 2018).

    On a clone (the caller's model is never changed): **cascade**, the
    layers with weights are re-initialised (`reinitialize_layer`) from the
    output down, cumulatively, one step at a time (a layer, or on large
    backbones a block of layers: `cascade_steps`), each step's maps
    compared with the original ones (`map_similarity`, at input
    resolution);
    **independent**, each attention layer alone is re-initialised from the
    model's weights. CAMs explain a fixed class per image. A map **fails**
    when its median Spearman correlation with the original stays above
    ``threshold`` after the whole cascade or, for an attention layer, after
    its own weights alone were re-initialised.

    Args:
        model: A `keras.Model` (functional or built Sequential) or `ModelState`.
        images: Images fitting the model (an array or any `as_source` input).
        explanations: The `Explanation` objects of ``model`` to check (the
            results are keyed by their ``method_key``), or ``None``: those
            that ``layers``, ``grad_cam_layer`` and ``cam_methods`` name.
        layers: Attention layers to check (``None``: every attention layer;
            a model without one checks the CAMs only).
        grad_cam_layer: Layer of the CAMs (``None``: the last 4-D layer).
        class_index: Class of the CAMs: ``None`` (the predicted class), an
            int or an ``(N,)`` int array.
        seed: Seed of the re-initialisation.
        batch_size: Images per forward pass.
        threshold: Median Spearman above which a map fails.
        independent: Also randomise each attention layer on its own.
        cam_methods: Names of the CAM methods to check.
        cascade: A step's unit, ``"auto"``, ``"layers"`` or ``"blocks"``
            (`cascade_steps`; attention layers are steps of their own).
        strategy: ``None`` or a `tf.distribute` strategy sharing batches.

    Returns:
        A JSON-ready dict: ``maps`` (the checked explanations'
        ``method_key``: attention layer paths, CAM methods' names);
        ``cascade`` with ``layers`` (the steps' names, in order; step ``k`` of
        every curve is after the first ``k``, step 0 the original), ``steps``
        (the layer paths of each step), ``unit`` (``"layers"`` or ``"blocks"``)
        and per map ``spearman_median`` and ``ssim_median`` (lists over the
        steps) and ``spearman_per_image`` (last step);
        ``independent`` (layer -> map -> ``spearman_median``,
        ``ssim_median``); ``checks``, one per map with ``map``,
        ``final_spearman_median``, ``final_ssim_median``,
        ``independent_spearman_median`` and ``passed``.
    """
    options = RunOptions(batch_size=batch_size, strategy=strategy, seed=seed)
    state = model_state(model)
    images = check_model_images(state, all_images(images, input_shape(state)))
    checked = _checked(state, explanations, layers, grad_cam_layer, cam_methods)
    cams = [e.layer for e in checked if e.uses_class]
    original, cascade, independent_results = _check_clone(
        state, checked, (images, class_index), cascade, independent, options
    )
    return {
        "maps": list(original),
        "grad_cam_layer": cams[0] if cams else default_cam_layer(state),
        "num_images": int(len(images)),
        "threshold": threshold,
        "cascade": cascade,
        "independent": independent_results,
        "checks": _checks(cascade, independent_results, threshold),
    }
