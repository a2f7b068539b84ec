"""Per-model state built once, in the open, and the checks taking a Source.

A `ModelState` (the flat graph, the attention modules, the compiled
functions) is kept on its model (``model.explain_attn_state``) and passed
on by the entry points: no module keeps one anywhere else. One
`export_maps` call and one report build the flat graph of each model once;
repeated calls given the model trace nothing new; two models never share a
state, and a model whose layers change gets a new one. The faithfulness checks
read a `Source` (a folder here) and give the numbers of the array form.
"""

import copy
import json
import pickle

import keras
import numpy as np
import pytest
from PIL import Image

import explain_attn.graph as graph_module
from explain_attn.attention.layers import SpatialAttention
from explain_attn.data.adapter import as_source
from explain_attn.data.source import ArraySource, read_arrays
from explain_attn.explanations.attention import attention_maps
from explain_attn.explanations.cam import grad_cam
from explain_attn.explanations.explanation import Explainer, Explanation
from explain_attn.explanations.export import export_maps
from explain_attn.faithfulness.deletion import deletion_insertion
from explain_attn.faithfulness.interventions import attention_interventions
from explain_attn.faithfulness.randomization import randomization_check
from explain_attn.faithfulness.segmentation import (
    gate_interventions,
    region_deletion,
    segmentation_randomization,
)
from explain_attn.graph import (
    STATE_ATTRIBUTE,
    ModelState,
    flat_graph,
    forget_state,
    model_state,
)
from explain_attn.report.segmentation_targets import TargetEncoding

SHAPE = (8, 8, 3)


@pytest.fixture
def builds(monkeypatch):
    """``{id(model): (model, flat graphs built)}`` while the test runs."""
    counts = {}
    build = graph_module._flatten

    def counting(model, check=False):
        if not check:  # The re-check of a traced graph is the same build.
            known = counts.get(id(model), (model, 0))
            counts[id(model)] = (model, known[1] + 1)
        return build(model, check)

    monkeypatch.setattr(graph_module, "_flatten", counting)
    return counts


def _same(first, second):
    """Equal JSON-ready results (NaN equal to NaN)."""
    assert json.dumps(first, sort_keys=True) == json.dumps(
        second, sort_keys=True
    )


def _model(seed, *, segmentation=False):
    """conv -> spatial attention -> (gap -> dense | 1x1 conv), softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = SpatialAttention(3, name="spatial")(x)
    if segmentation:
        outputs = keras.layers.Conv2D(
            2, 1, activation="softmax", name="pixels"
        )(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = keras.layers.Dense(2, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="same_name")


def test_model_state_is_kept_on_the_model_in_the_open(layered_model):
    forget_state(layered_model)
    state = model_state(layered_model)
    assert isinstance(state, ModelState) and state.model is layered_model
    # Kept where the user can see it, like Keras' predict_function.
    assert getattr(layered_model, STATE_ATTRIBUTE) is state
    assert model_state(layered_model) is state
    assert model_state(state) is state
    assert flat_graph(state) is state.graph
    forget_state(layered_model)
    assert model_state(layered_model) is not state
    with pytest.raises(TypeError, match="Received: model of type str"):
        model_state("model.keras")


def test_a_model_whose_layers_change_gets_a_new_state():
    model = keras.Sequential(
        [keras.Input(SHAPE), keras.layers.Conv2D(2, 3, name="conv")]
    )
    first = model_state(model)
    assert [tap.path for tap in first.graph.taps.values()] == ["conv"]
    model.add(keras.layers.GlobalAveragePooling2D(name="gap"))
    second = model_state(model)
    assert second is not first
    assert [tap.path for tap in second.graph.taps.values()] == ["conv", "gap"]


def test_the_kept_state_is_not_saved_with_the_model(tmp_path):
    model = _model(4)
    images = np.random.default_rng(1).random((3, *SHAPE), dtype=np.float32)
    before = attention_maps(model, images, layers="spatial")["spatial"]
    assert model_state(model).functions  # Compiled and kept.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert STATE_ATTRIBUTE not in vars(loaded)
    assert len(loaded.weights) == len(model.weights) == 6
    again = attention_maps(loaded, images, layers="spatial")["spatial"]
    np.testing.assert_allclose(again, before, atol=1e-6)
    # Nor pickled, copied or cloned with it (Keras rebuilds from the file
    # format or the config).
    for other in (
        pickle.loads(pickle.dumps(model)),
        copy.deepcopy(model),
        keras.models.clone_model(model),
    ):
        assert STATE_ATTRIBUTE not in vars(other)
        assert model_state(other).model is other


def test_repeated_calls_given_the_model_trace_once(layered_model, images):
    forget_state(layered_model)
    first = grad_cam(layered_model, images[:2])
    functions = dict(model_state(layered_model).functions)
    for _ in range(3):
        again = grad_cam(layered_model, images[:2])
        np.testing.assert_array_equal(again, first)
    assert model_state(layered_model).functions == functions


def test_one_export_maps_call_builds_the_graph_once(
    layered_model, images, builds, tmp_path
):
    # The issue measured 11 entries into `flat_graph` for one call; the
    # graph was built once only because a hidden cache kept it.
    forget_state(layered_model)
    source = ArraySource(images[:4], np.arange(4) % 3)
    export_maps(layered_model, source, tmp_path / "a.npz", methods=["grad_cam"])
    assert [count for _, count in builds.values()] == [1]
    assert next(iter(builds.values()))[0] is layered_model
    # Later calls, given the model or its state, build nothing more.
    state = model_state(layered_model)
    export_maps(layered_model, source, tmp_path / "b.npz", methods=["grad_cam"])
    export_maps(state, source, tmp_path / "c.npz", methods=["grad_cam"])
    assert [count for _, count in builds.values()] == [1]


def test_one_report_builds_each_models_graph_once(tiny_report_and_builds):
    # Counted while the shared tiny report (faithfulness checks included)
    # was built: each model once, and each randomisation check's clone.
    _, builds = tiny_report_and_builds
    names = sorted((model.name, count) for model, count in builds)
    assert names == [("small_attention", 1)] * 2 + [("small_convnet", 1)] * 2


def test_two_models_do_not_share_a_state():
    first, second = _model(1), _model(2)  # Same names, other weights.
    images = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)
    one = Explanation(first, "attention", "spatial", "first")
    two = Explanation(second, "attention", "spatial", "second")
    explainer = Explainer([one, two])
    states = explainer.states
    assert states[id(first)].model is first
    assert states[id(second)].model is second
    maps = explainer(images)
    own = {
        key: attention_maps(model, images, layers="spatial")["spatial"]
        for key, model in (("first", first), ("second", second))
    }
    np.testing.assert_allclose(maps[one], own["first"], atol=1e-6)
    np.testing.assert_allclose(maps[two], own["second"], atol=1e-6)
    assert np.abs(own["first"] - own["second"]).max() > 1e-3
    # An explanation given a state keeps it; the Explainer uses it.
    state = model_state(first)
    kept = Explanation(state, "grad_cam", "conv")
    assert kept.model is first and kept.state is state
    assert Explainer([kept]).states[id(first)] is state


def _folder(root, count=6):
    """Class folders ``a`` and ``b`` of PNGs with masks; the images as
    read ([0, 1]), their labels and masks."""
    rng = np.random.default_rng(3)
    images, labels, masks = [], [], []
    for index in range(count):
        name = "ab"[index % 2]
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        (root / "masks" / name).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        mask = np.zeros(SHAPE[:2], np.uint8)
        mask[index % 4 : index % 4 + 4, 2:6] = 255
        Image.fromarray(pixels).save(root / "images" / name / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / name / f"{index}.png")
        images.append(pixels / np.float32(255))
        labels.append(index % 2)
        masks.append(mask > 0)
    order = np.argsort(labels, kind="stable")  # Class by class, as read.
    return (
        np.asarray(images, np.float32)[order],
        np.asarray(labels)[order],
        np.asarray(masks)[order],
    )


def test_the_checks_read_a_source_as_the_arrays(tmp_path, builds):
    images, labels, masks = _folder(tmp_path)
    folder = str(tmp_path)
    read = read_arrays(as_source(folder, image_shape=SHAPE))
    np.testing.assert_allclose(read[0], images, atol=1e-6)
    np.testing.assert_array_equal(read[1], labels)
    model = model_state(_model(3))  # Each check reads its graph.
    maps = {"gate": np.random.default_rng(1).random((6, 4, 4))}
    arrays = deletion_insertion(model, images, labels, maps, steps=3)
    for given in (folder, as_source(folder), (images, labels)):
        found = deletion_insertion(model, given, maps=maps, steps=3)
        for name in ("gate", "random"):
            for key in ("deletion", "insertion"):
                np.testing.assert_array_equal(
                    found[name][key], arrays[name][key]
                )
    with pytest.raises(ValueError, match="`labels` are needed"):
        deletion_insertion(model, [images[0], images[1]], maps=maps)
    options = {"num_resamples": 200, "layers": ["spatial"]}
    expected = attention_interventions(
        model, ArraySource(images, labels, masks=masks), **options
    )
    _same(attention_interventions(model, folder, **options), expected)
    options = {"layers": ["spatial"], "cam_methods": (), "independent": False}
    expected = randomization_check(model, images, **options)
    _same(randomization_check(model, folder, **options), expected)
    # The model's graph once for every check; each clone's once.
    built = [(m is model.model, count) for m, count in builds.values()]
    assert sorted(built) == [(False, 1), (False, 1), (True, 1)]


def test_the_segmentation_checks_read_a_source(tmp_path):
    images, labels, masks = _folder(tmp_path)
    folder = str(tmp_path)
    model = _model(4, segmentation=True)
    encoding = TargetEncoding(2, ("a", "b"))
    targets = encoding(labels, masks)
    expected = gate_interventions(model, images, targets, encoding)
    _same(gate_interventions(model, folder, targets, encoding), expected)
    maps = np.random.default_rng(2).random((6, *SHAPE[:2]))
    classes, regions = np.ones(6, np.int64), masks
    expected = region_deletion(model, images, maps, classes, regions, steps=2)
    found = region_deletion(model, folder, maps, classes, regions, steps=2)
    for name in ("deletion", "insertion"):
        np.testing.assert_array_equal(found[name], expected[name])
    expected = segmentation_randomization(model, images, encoding)
    _same(segmentation_randomization(model, folder, encoding), expected)
