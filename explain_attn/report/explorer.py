"""The explorer: every test image, its predictions and metrics, in the page.

The HTML report carries one JSON payload (`explorer_payload`) read by a
plain inline script (``templates/_explorer.html``): a table of every test
image that can be sorted and filtered, and thumbnails with each map
overlaid, drawn on demand on a canvas. Nothing is fetched; with JavaScript
off, the rest of the report reads as before.

Size budget: **at most 10 MB of HTML at 10,000 test images** (measured by
``benchmarks/bench_report_size.py``). To meet it:

- metric values are integers in thousandths (``0.486`` -> ``486``), ``null``
  where undefined, stored column by column;
- thumbnails are tiles of shared JPEG sprite sheets (`SHEET_TILES` tiles a
  sheet), since a JPEG's ~600 bytes of headers would otherwise outweigh a
  32-pixel tile: images at `IMAGE_SIZE` pixels (RGB, quality
  `IMAGE_QUALITY`), maps at their own resolution up to `MAP_SIZE` pixels
  (grey, each scaled to its own [min, max], quality `MAP_QUALITY`); the
  script colours and blends them as the gallery does.
"""

import base64
import dataclasses
import io
import math

import matplotlib
import numpy as np
from PIL import Image
from skimage.transform import resize

from explain_attn.data.source import ArraySource
from explain_attn.report.contributions import Contributor, Part
from explain_attn.report.section import Computed, Section

__all__ = [
    "ExplorerSection",
    "IMAGE_SIZE",
    "MAP_SIZE",
    "MASK_SIZE",
    "SIZE_BUDGET_BYTES",
    "Thumbnails",
    "Tiles",
    "explorer_payload",
    "sprite_sheets",
    "thousandths",
    "thumbnail_payload",
]

SIZE_BUDGET_BYTES = 10_000_000
"""The report's size budget at `SIZE_BUDGET_IMAGES` test images."""
SIZE_BUDGET_IMAGES = 10_000
IMAGE_SIZE = 32
"""Side of an image thumbnail, in pixels (smaller images keep their size)."""
MAP_SIZE = 12
"""Largest side of a map thumbnail, in pixels."""
MASK_SIZE = 16
"""Largest side of a label map's (true or predicted mask's) thumbnail: the
demo's 1,000 masks of 16 x 16 take 0.1 MB of base64 JPEG, at 32 x 32
0.38 MB."""
SHEET_TILES = 32
"""Tiles per side of a sprite sheet (1,024 thumbnails a sheet)."""
IMAGE_QUALITY, MAP_QUALITY = 70, 80
"""JPEG qualities. Measured on the demo's sheets (base64 bytes per image):
an image tile 402 at quality 80, 344 at 70; a 16 x 16 map 208 at 90, a
12 x 12 map 89 at 80, an 8 x 8 map 51 at 80."""
OVERLAY_COLORMAP = "inferno"


def _thumbnail_shape(shape, limit):
    height, width = shape
    scale = min(1.0, limit / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_uint8(values):
    return np.clip(np.round(255 * values), 0, 255).astype(np.uint8)


def _scaled_maps(maps, shape):
    """Each map scaled to its own [min, max] (constant maps: 0), resized."""
    maps = np.asarray(maps, np.float64)
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1)[:, None, None]
    span = (flat.max(axis=1) - flat.min(axis=1))[:, None, None]
    scaled = np.divide(
        maps - low, span, out=np.zeros_like(maps), where=span > 0
    )
    if scaled.shape[1:] != tuple(shape):
        scaled = resize(
            scaled, (len(scaled), *shape), order=1, anti_aliasing=True
        )
    return _to_uint8(scaled)


def _image_thumbnails(images, shape):
    """``(n, h, w, C) uint8`` thumbnails of ``(n, H, W, C)`` images in
    [0, 1]: each image in bytes, shrunk by PIL's box filter (the mean of
    the pixels each thumbnail pixel covers)."""
    pixels = _to_uint8(np.clip(np.asarray(images)[..., :3], 0, 1))
    if pixels.shape[1:3] == tuple(shape):
        return pixels
    size = (shape[1], shape[0])
    tiles = np.empty((len(pixels), *shape, pixels.shape[-1]), np.uint8)
    for position, tile in enumerate(pixels):
        image = Image.fromarray(tile[..., 0] if tile.shape[-1] == 1 else tile)
        shrunk = image.resize(size, Image.Resampling.BOX)
        tiles[position] = np.asarray(shrunk).reshape(tiles.shape[1:])
    return tiles


def _label_tiles(label_maps, shape, num_labels):
    """``(n, h, w) uint8`` tiles of ``(n, H, W)`` integer label maps: the
    nearest label at each tile pixel, label ``k`` shown as
    ``k / (num_labels - 1)`` of the scale (the same for every image)."""
    label_maps = np.asarray(label_maps)
    height, width = label_maps.shape[1:]
    rows = (np.arange(shape[0]) + 0.5) * height / shape[0]
    columns = (np.arange(shape[1]) + 0.5) * width / shape[1]
    picked = label_maps[:, rows.astype(int)][:, :, columns.astype(int)]
    return _to_uint8(picked / max(1, num_labels - 1))


class Thumbnails(Contributor):
    """An `evaluate` contributor keeping small thumbnails of every image
    and map.

    Args:
        explanations: The `Explanation` objects whose maps are kept.
        count: Number of test images (kept for the record).
        image_shape: ``(H, W)`` of the test images.
        label_maps: Objects with ``key`` and ``label`` (true and predicted
            masks) whose maps are integer label maps: kept at up to
            `MASK_SIZE` pixels, on one scale of ``num_labels`` labels.
        num_labels: Labels of the label maps, background (0) included.

    Its result (`reduce`) is a `Tiles`.
    """

    def __init__(
        self, explanations, *, count, image_shape, label_maps=(), num_labels=2
    ):
        super().__init__()
        self.label_maps = list(label_maps)
        self.num_labels = num_labels
        self.explanations = list(explanations)
        self.count = count
        self.image_shape = _thumbnail_shape(image_shape, IMAGE_SIZE)
        self.mask_shape = _thumbnail_shape(image_shape, MASK_SIZE)

    def contribute(self, start, images, maps, labels=None, masks=None):
        """Rows ``("images",)`` and ``(explanation key,)``: uint8 tiles."""
        tiles = _image_thumbnails(images, self.image_shape)
        if tiles.shape[-1] == 1:  # grayscale: shown as RGB, like colour
            tiles = np.repeat(tiles, 3, axis=-1)
        rows = {("images",): tiles}
        for kept in self.label_maps:
            rows[(kept.key,)] = _label_tiles(
                maps[kept], self.mask_shape, self.num_labels
            )
        for explanation in self.explanations:
            values = maps[explanation]
            shape = _thumbnail_shape(values.shape[1:], MAP_SIZE)
            rows[(explanation.key,)] = _scaled_maps(values, shape)
        return Part(start, start + len(images), rows)

    def reduce(self, total):
        kept = self.label_maps + self.explanations
        if total is None:
            empty = np.zeros((0, *self.image_shape, 3), np.uint8)
            return Tiles(empty, {}, self.image_shape)
        maps = {e: total.rows[(e.key,)] for e in kept}
        return Tiles(total.rows["images",], maps, self.image_shape)


@dataclasses.dataclass(frozen=True)
class Tiles:
    """The thumbnails of every image (`Thumbnails`' result).

    Attributes:
        images: ``(N, h, w, 3) uint8``.
        maps: `Explanation` (label maps first) -> ``(N, h', w') uint8``.
        image_shape: ``(h, w)`` of the image tiles.
    """

    images: np.ndarray
    maps: dict
    image_shape: tuple


def sprite_sheets(tiles, *, quality):
    """JPEG ``data:`` URIs of sheets of up to `SHEET_TILES`² tiles.

    Tile ``i`` of a sheet sits at column ``i % SHEET_TILES``, row
    ``i // SHEET_TILES``.

    Args:
        tiles: ``(N, h, w, 3)`` or ``(N, h, w)`` uint8.
        quality: JPEG quality (1-95).

    Returns:
        A list of data URIs, one per sheet of `SHEET_TILES`² tiles.
    """
    tiles = np.asarray(tiles, np.uint8)
    height, width = tiles.shape[1:3]
    per_sheet = SHEET_TILES * SHEET_TILES
    sheets = []
    for chunk, _, _ in ArraySource(tiles).batches(per_sheet):
        rows = math.ceil(len(chunk) / SHEET_TILES)
        columns = min(len(chunk), SHEET_TILES)
        sheet = np.zeros(
            (rows * height, columns * width, *tiles.shape[3:]), np.uint8
        )
        for index, tile in enumerate(chunk):
            row, column = divmod(index, SHEET_TILES)
            sheet[
                row * height : (row + 1) * height,
                column * width : (column + 1) * width,
            ] = tile
        buffer = io.BytesIO()
        Image.fromarray(sheet).save(buffer, format="JPEG", quality=quality)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        sheets.append(f"data:image/jpeg;base64,{encoded}")
    return sheets


def thousandths(values):
    """Values as integers in thousandths, ``None`` where undefined."""
    return [
        None if v is None or not math.isfinite(v) else round(1000 * v)
        for v in values
    ]


def _columns(data):
    """Explorer columns: explanation x per-image metric, then agreement."""
    columns, values = [], []
    per_image = data["per_image"]
    for row in data["explanations"]:
        sources = [("", per_image["metrics"].get(row["id"], {}))]
        agreement = per_image["agreement_with_reference"].get(row["id"])
        if agreement:
            sources.append(("agreement ", agreement))
        for prefix, table in sources:
            for metric, numbers in table.items():
                columns.append(
                    {
                        "explanation": row["id"],
                        "label": row["short_label"],
                        "model": row["model"],
                        "metric": prefix + metric.replace("_", " "),
                    }
                )
                values.append(thousandths(numbers))
    return columns, values


def _colormap():
    table = matplotlib.colormaps[OVERLAY_COLORMAP](np.linspace(0, 1, 256))
    return _to_uint8(table[:, :3]).ravel().tolist()


def thumbnail_payload(thumbnails, captions=None):
    """The payload's ``thumbnails``: sprite sheets of `Tiles`.

    Args:
        thumbnails: The `Tiles` (a `Thumbnails` result).
        captions: Optional key -> column index: that map's caption shows
            the image's value in the column (a predicted mask's Dice).
    """
    captions = captions or {}
    maps = {}
    for explanation, tiles in thumbnails.maps.items():
        maps[explanation.key] = {
            "label": explanation.label,
            "size": list(tiles.shape[1:]),
            "sheets": sprite_sheets(tiles, quality=MAP_QUALITY),
        }
        if explanation.key in captions:
            maps[explanation.key]["column"] = captions[explanation.key]
    return {
        "tiles": SHEET_TILES,
        "image_size": list(thumbnails.image_shape),
        "images": sprite_sheets(thumbnails.images, quality=IMAGE_QUALITY),
        "maps": maps,
        "colormap": _colormap(),
    }


def explorer_payload(data, thumbnails=None):
    """The explorer's JSON payload.

    Args:
        data: The report's numbers (``per_image``, ``models``,
            ``explanations``, ``dataset``).
        thumbnails: `Tiles` (a `Thumbnails` result), or ``None`` for a
            table only.

    Returns:
        A JSON-ready dict: ``classes``, ``labels`` (a class per image, or
        for segmentation the list of classes in its true mask),
        ``models`` (``key``, ``name``), ``predictions`` (model key ->
        list; ``None`` for segmentation), ``columns`` and ``values``
        (column-major thousandths), ``thumbnails`` (or ``None``):
        ``tiles`` (tiles per sheet side), ``images`` (sheets) and
        ``image_size``, ``maps`` (explanation id -> ``{"label", "size",
        "sheets"}`` and optionally ``"column"``), ``colormap`` (256 RGB
        triples, flattened); optionally ``metric``, the metric shown first.
    """
    per_image = data["per_image"]
    columns, values = _columns(data)
    payload = {
        "classes": list(data["dataset"]["class_names"]),
        "labels": list(per_image["labels"]),
        "models": [
            {"key": m["key"], "name": m["name"]} for m in data["models"]
        ],
        "predictions": per_image["predictions"],
        "columns": columns,
        "values": values,
        "thumbnails": None,
    }
    if thumbnails is not None:
        payload["thumbnails"] = thumbnail_payload(thumbnails)
    return payload


class ExplorerSection(Section):
    """Every test image's numbers and thumbnails, in the page only (its
    payload is the section's attachment; ``report.json`` has no key)."""

    name = "explorer"
    partial = "_explorer.html"
    phase = "last"

    def contributors(self, run):
        return {
            "thumbnails": Thumbnails(
                run.explanations,
                count=len(run.test.labels),
                image_shape=tuple(run.test.image_shape)[:2],
            )
        }

    def compute(self, run, observed, data):
        payload = explorer_payload(data, observed["thumbnails"])
        return Computed(None, attachment=payload)

    def shown(self, report):
        return bool(report.explorer)

    def context(self, report):
        return {"explorer": report.explorer}
