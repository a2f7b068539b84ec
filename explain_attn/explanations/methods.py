"""The registry of explanation methods: attention maps and the CAM family.

A `Method` knows which layers it explains by default, how to name its maps,
and how to prepare, once per model, a function from a batch of images to
its maps. The report, the gallery, the faithfulness checks and ``explain-attn
maps`` only ever look methods up here by name, so a new method is a new
entry, never an edit of theirs. A new CAM method is a `BaseCAM` subclass in
`explain_attn.explanations.cam` decorated with `register_cam`.
"""

import abc

from explain_attn.attention.discovery import attention_module
from explain_attn.explanations.attention import AttentionExtractor
from explain_attn.explanations.compiled import compiled
from explain_attn.graph import flat_graph, model_state
from explain_attn.models.lookup import (
    channel_module_names,
    resolve_layers,
    single_layer,
)

__all__ = [
    "ATTENTION",
    "METHODS",
    "AttentionMethod",
    "CAMMethod",
    "ChannelWeightedMethod",
    "Method",
    "cam_method_names",
    "get_method",
    "register_cam",
    "register_method",
]


class Method(abc.ABC):
    """One way of explaining a model's decisions with a map.

    Attributes:
        name: The method's name (``--method NAME`` on the command line).
        title: How reports name it.
        uses_class: Whether its maps depend on the class explained.
        is_attention: Whether its maps are the attention weights the model
            itself computes and applies (gates in [0, 1]), not a reading
            derived from gradients or activations: the interventions change
            them, the randomisation check re-initialises their own layer,
            and ``explain-attn maps`` always writes them.
    """

    name = ""
    title = ""
    uses_class = False
    is_attention = False

    @abc.abstractmethod
    def layers(self, model, requested=None):
        """The layer paths of ``model`` it explains.

        Args:
            model: The model, or its `explain_attn.graph.ModelState` (as
                `Explainer` passes it).
            requested: ``None`` for the method's default, or names, paths
                or patterns.
        """

    @abc.abstractmethod
    def prepare(self, model, layers, resize_to=None):
        """Returns ``function(batch, classes) -> {layer: (B, h, w) maps}``.

        ``model`` is the model's `explain_attn.graph.ModelState` (or a
        `keras.Model`, for which one is built): its compiled parts are kept
        in it (`explain_attn.explanations.compiled`); call the function for
        every batch.
        ``classes`` is ``(B,)`` int32 with -1 for the predicted class.
        """

    def prepare_with_predictions(self, model, layers, resize_to=None):
        """Like `prepare`, but the function returns ``(maps, predictions)``
        (``(B,)`` int64 predicted classes) from the same forward pass, or
        ``None`` when the method cannot read both in one pass."""
        return None

    def file_key(self, index):
        """The name of the array of its ``index``-th layer in map files."""
        return f"{self.name}_{index}"

    @property
    def layer_names_key(self):
        """The name of the array of its layers' paths in map files."""
        return f"{self.name}_layer_names"

    def key(self, layer):
        """The explanation's key within its model's (see `Explanation`)."""
        return f"{self.name}@{layer}"

    def label(self, layer):
        """A short label of the explanation within its model."""
        return f"{self.title} ({layer})"


class AttentionMethod(Method):
    """The attention weights of attention modules, read by layer name."""

    name = "attention"
    title = "attention"
    is_attention = True
    layer_names_key = "layer_names"

    def layers(self, model, requested=None):
        return resolve_layers(model, requested)

    def prepare(self, model, layers, resize_to=None):
        state = model_state(model)
        key = (AttentionExtractor, tuple(layers), resize_to)
        extractor = compiled(
            state, key, lambda: AttentionExtractor(state, layers, resize_to)
        )
        return lambda batch, classes: extractor(batch)

    def prepare_with_predictions(self, model, layers, resize_to=None):
        state = model_state(model)
        layers = tuple(layers)
        extractor = compiled(
            state,
            (AttentionExtractor, layers, resize_to, "predictions"),
            lambda: AttentionExtractor(
                state, layers, resize_to, predictions=True
            ),
        )
        return lambda batch, classes: extractor.maps_and_predictions(batch)

    def file_key(self, index):
        return f"map_{index}"

    def key(self, layer):
        return layer

    def label(self, layer):
        return layer


class CAMMethod(Method):
    """A gradient-based class activation map (a `BaseCAM` subclass).

    Args:
        cam_class: The `explain_attn.explanations.cam.BaseCAM` subclass.
    """

    uses_class = True

    def __init__(self, cam_class):
        self.cam_class = cam_class
        self.name = cam_class.name
        self.title = cam_class.title

    def layers(self, model, requested=None):
        state = model_state(model)
        if requested is None:
            return [self.cam_class.default_layer(state)]
        if isinstance(requested, str):
            requested = [requested]
        return [single_layer(state, layer) for layer in requested]

    def prepare(self, model, layers, resize_to=None):
        state = model_state(model)
        cams = {
            layer: compiled(
                state,
                (self.cam_class, layer),
                lambda layer=layer: self.cam_class(state, layer),
            )
            for layer in layers
        }

        def maps(batch, classes):
            return {
                layer: cam.batch(batch, classes, resize_to)
                for layer, cam in cams.items()
            }

        return maps

    def key(self, layer):
        return self.name

    def file_key(self, index):
        # One layer per CAM method: one array, named after the method.
        return self.name

    @property
    def layer_names_key(self):
        return f"{self.name}_layer"

    def label(self, layer):
        return f"{self.title} ({layer})"


ATTENTION = "attention"
"""The name of the attention-weights method (`AttentionMethod`)."""

METHODS = {}
"""Registered methods by name, in registration order."""


def register_method(method):
    """Adds a `Method` instance to `METHODS`; returns it."""
    if not method.name or method.name in METHODS:
        raise ValueError(
            f"A method needs a new, non-empty name. Received: {method.name!r}"
        )
    METHODS[method.name] = method
    return method


def register_cam(cam_class):
    """Class decorator: registers a `BaseCAM` subclass as a method."""
    register_method(CAMMethod(cam_class))
    return cam_class


def get_method(name):
    """The registered method called ``name``.

    Raises:
        ValueError: If there is none (the message lists the methods).
    """
    if name not in METHODS:
        raise ValueError(
            f"Unknown explanation method {name!r}. Choose from: "
            f"{', '.join(METHODS)}."
        )
    return METHODS[name]


def cam_method_names():
    """Names of the registered methods that explain a class (the CAMs)."""
    return [name for name, method in METHODS.items() if method.uses_class]


class ChannelWeightedMethod(Method):
    """The spatial view of channel attention: channel-weighted activations.

    A channel gate (squeeze-and-excitation) has one weight per channel and
    no map. Its spatial view is the mean over channels of the features it
    weighs, ``mean_c w_c A_c`` (the output of the multiply that applies the
    gate): an *activation* map, named so in every label. Modules whose
    features are 1×1 have no such view.
    """

    name = "channel_weighted"
    title = "channel-weighted activations"

    def layers(self, model, requested=None):
        state = model_state(model)
        model = state.model
        if requested is None:
            paths = channel_module_names(state)
        else:
            paths = resolve_layers(state, requested)
        readable = []
        for path in paths:
            module = attention_module(state, path)
            if module is None or module.kind.spatial or not module.applied_at:
                raise ValueError(
                    f"Layer {path!r} is not a channel gate, so it has no "
                    "channel-weighted activations. Choose one of: "
                    f"{', '.join(channel_module_names(state)) or 'none'}."
                )
            height, width = self._output(state, module).shape[1:3]
            if height is None or width is None or height * width > 1:
                readable.append(path)
        if not readable:
            raise ValueError(
                f"Model {model.name!r} has no channel gate applied to "
                "features of at least 2×2, so there are no channel-weighted "
                "activation maps to read."
            )
        return readable

    @staticmethod
    def _output(model, module):
        return flat_graph(model).taps[module.applied_at].output

    def prepare(self, model, layers, resize_to=None):
        state = model_state(model)
        applied = {
            layer: attention_module(state, layer).applied_at for layer in layers
        }
        targets = tuple(applied.values())
        key = (AttentionExtractor, targets, resize_to)
        extractor = compiled(
            state, key, lambda: AttentionExtractor(state, targets, resize_to)
        )

        def maps(batch, classes):
            values = extractor(batch)
            return {layer: values[path] for layer, path in applied.items()}

        return maps

    def label(self, layer):
        return f"channel-weighted activations ({layer})"


register_method(AttentionMethod())
register_method(ChannelWeightedMethod())
