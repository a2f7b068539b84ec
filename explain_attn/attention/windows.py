"""Window attention: windows of an image in the batch axis, put back.

Swin Transformer's blocks attend within windows: the feature map
``(B, H, W, C)`` is rolled by ``-shift`` on both axes (shifted-window
blocks), cut into windows of ``ws × ws`` positions laid out row-major over
the ``(H / ws, W / ws)`` grid of windows, and the windows become rows of
the batch axis, ``(B · windows, ws · ws, C)`` (keras-hub's
``window_partition``). A softmax over such rows is a map of a window, not
of an image.

The layout is not assumed, it is read off the model's own code. Upstream
of the softmax, the window tokens are a tensor made from a per-image one
by calls that only move values (reshape, transpose, roll, pad, slice).
`window_layout` runs those calls of the flat graph again on a probe
holding each position's number (``1 + index``, the same in every
channel), for one image and for two, and reads where every position of
the image lands: window row and token. Runs of two images check that
each image's windows are its own consecutive rows; padding (number 0) is
dropped; each position must land exactly once. The map of an image is
then a gather from its windows' tokens: every position lands where it is
in the image, the cyclic shift undone because the probe went through the
same roll.
"""

import dataclasses
import math

import keras
import numpy as np

__all__ = ["WindowLayout", "window_layout"]

_MOVES_VALUES = {
    "Reshape",
    "Transpose",
    "Permute",
    "Roll",
    "Pad",
    "Slice",
    "StridedSlice",
    "GetItem",
    "ExpandDims",
    "Squeeze",
    "Identity",
    "Dropout",
}
"""Calls whose output holds values of their first input, moved or
padded (a dropout is an identity at inference)."""

_MAX_CHAIN = 24
_MAX_SEARCH = 64


@dataclasses.dataclass(frozen=True)
class WindowLayout:
    """Where the positions of an image are among its windows' tokens.

    Attributes:
        grid: ``(H, W)`` of the image's positions at the stage.
        windows: Rows of the batch axis per image.
        tokens: Tokens per window (the softmax's positions).
        index: ``(H · W,)`` int: for position ``i · W + j`` of the image,
            its place ``window · tokens + token`` among the image's
            windows' tokens.
    """

    grid: tuple
    windows: int
    tokens: int
    index: np.ndarray

    @property
    def is_identity(self):
        """Whether the tokens are the image's positions, in order."""
        return self.windows == 1 and np.array_equal(
            self.index, np.arange(self.tokens)
        )


def window_layout(graph, tensor, tokens):
    """Where the ``tokens`` positions ``tensor`` is computed from lie in
    the image.

    Args:
        graph: The flat graph (`explain_attn.graph.FlatGraph`).
        tensor: The softmax's output.
        tokens: The softmax's positions.

    Returns:
        A `WindowLayout`; a string saying why not, when the tokens come
        several rows per image and the image's positions cannot be
        recovered from them (a position lost, repeated or mixed with
        another's); ``None`` when no tokens made by moving a per-image
        tensor's values are found.
    """
    reason = None
    for windows in _window_tensors(graph, tensor, tokens):
        chain = _moving_chain(graph, windows)
        if not chain or chain[0].rows_per_image not in (None, 1):
            # Not made from a per-image tensor (ViTDet's queries, heads
            # folded into the batch axis, reshaped to their grid).
            continue
        found = _probe(chain, windows, tokens)
        if isinstance(found, WindowLayout):
            return found
        reason = reason or found
    return reason


def _moves_values(tap):
    return tap is not None and type(tap.layer).__name__ in _MOVES_VALUES


def _window_tensors(graph, tensor, tokens):
    """Tensors upstream of ``tensor``, nearest first, of ``tokens``
    positions (``(rows, tokens, C)`` or ``(rows, h, w, C)``) made by a call
    that moves values."""
    frontier, seen = [tensor], {id(tensor)}
    while frontier and len(seen) < _MAX_SEARCH:
        following = []
        for value in frontier:
            shape = tuple(getattr(value, "shape", ()) or ())
            tap = graph.producer(value)
            if (
                value is not tensor
                and len(shape) in (3, 4)
                and None not in shape[1:]
                and math.prod(shape[1:-1]) == tokens
                and _moves_values(tap)
            ):
                yield value
            for source in [] if tap is None else tap.tensors:
                if id(source) not in seen:
                    seen.add(id(source))
                    following.append(source)
        frontier = following


def _moving_chain(graph, tensor):
    """The calls that moved values into ``tensor``, first call first, back
    to the nearest tensor another call computed."""
    chain = []
    tap = graph.producer(tensor)
    while _moves_values(tap) and len(chain) < _MAX_CHAIN:
        data = tap.arguments[0] if tap.arguments else None
        if not isinstance(data, keras.KerasTensor):
            break
        chain.append(tap)
        tap = graph.producer(data)
    return chain[::-1]


def _replay(chain, probe, images):
    """Runs ``chain`` on ``probe`` (its first call's data); any other
    tensor argument (the batch a rebatched reshape reads its size from,
    `explain_attn.batching`) is zeros for ``images`` images."""
    values = {id(chain[0].arguments[0]): probe}

    def value(item):
        if not isinstance(item, keras.KerasTensor):
            return item
        if id(item) not in values:
            shape = (images, *item.shape[1:])
            values[id(item)] = np.zeros(shape, dtype=item.dtype)
        return values[id(item)]

    for tap in chain:
        args = keras.tree.map_structure(value, list(tap.arguments))
        kwargs = keras.tree.map_structure(value, dict(tap.keywords))
        values[id(tap.output)] = tap.layer(*args, **kwargs)
    return keras.ops.convert_to_numpy(values[id(chain[-1].output)])


def _probe(chain, windows, tokens):
    """The layout read by running ``chain`` on numbered positions; else
    why not, for tokens several rows per image (`window_layout`), or
    ``None``."""
    source = chain[0].arguments[0]
    shape = tuple(source.shape[1:])
    if None in shape or len(shape) < 2 or None in windows.shape[1:]:
        return None
    grid = _grid(chain, shape)
    if grid is None:
        return None
    positions = math.prod(shape[:-1])
    numbers = np.arange(1, 2 * positions + 1, dtype="float32")
    probe = np.broadcast_to(
        numbers.reshape((2, *shape[:-1], 1)), (2, *shape)
    ).astype(source.dtype)
    try:
        moved = _replay(chain, probe, 2)
    except (ValueError, TypeError, IndexError):
        return None
    moved = moved.reshape(-1, tokens, moved.shape[-1])
    rows = moved.shape[0] // 2 if moved.shape[0] % 2 == 0 else 0
    found = None
    if rows and np.all(moved == moved[..., :1]):
        # (image, window · token): each image's position numbers.
        found = _layout(moved[..., 0].reshape(2, -1), grid, rows, tokens)
    if found is None and rows > 1:
        return (
            f"its batch axis holds {rows} rows of {tokens} tokens per "
            f"image, which do not hold each of the image's {grid[0]}×"
            f"{grid[1]} positions once"
        )
    return found


def _layout(numbers, grid, windows, tokens):
    """The `WindowLayout` of ``numbers`` ``(2, windows · tokens)``: each
    image's position numbers at its windows' tokens, or ``None``."""
    positions = grid[0] * grid[1]
    index = np.full(positions, -1)
    for image, row in enumerate(numbers):
        for place, number in enumerate(row):
            if number == 0:  # Padding.
                continue
            position = int(number) - 1 - image * positions
            if not 0 <= position < positions:
                return None  # Another image's values.
            if image == 0:
                if index[position] >= 0:
                    return None
                index[position] = place
            elif index[position] != place:
                return None
    if (index < 0).any():
        return None
    return WindowLayout(tuple(grid), windows, tokens, index)


def _grid(chain, shape):
    """``(H, W)`` of a per-image ``shape`` without the batch: its own for
    a 4-D one, else the first 4-D tensor of the chain with as many
    positions (tokens reshaped into their grid)."""
    if len(shape) == 3:
        return shape[:2]
    if len(shape) != 2:
        return None
    for tap in chain:
        out = tuple(getattr(tap.output, "shape", ()) or ())
        if len(out) == 4 and out[1] * out[2] == shape[0]:
            return out[1:3]
    side = math.isqrt(shape[0])
    return (side, side) if side * side == shape[0] else None
