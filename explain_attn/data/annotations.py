"""Bounding boxes as foreground masks: Pascal VOC XML files and a CSV.

Coordinates are pixel indices, inclusive at both ends, x for columns and y
for rows:

- **VOC XML** (``<object><bndbox>`` with ``xmin``, ``ymin``, ``xmax``,
  ``ymax``) is 1-based, as in Pascal VOC: the top-left pixel is (1, 1), so
  a box over a whole ``W x H`` image is ``1, 1, W, H``.
- **CSV** (header ``file,x_min,y_min,x_max,y_max``) is 0-based, as NumPy
  indexes ``image[y, x]``: the whole image is ``0, 0, W-1, H-1``.

Internally a box is its pixel edges ``(x_start, y_start, x_stop, y_stop)``,
0-based and half-open: VOC gives ``(xmin - 1, ymin - 1, xmax, ymax)``, CSV
``(x_min, y_min, x_max + 1, y_max + 1)``. Fractional coordinates are
accepted. `boxes_to_mask` marks the pixels whose centres lie inside a box,
at the image's size or a resized one, so a box scales with its image.
"""

import csv
import dataclasses
import math
import unicodedata
from xml.etree import ElementTree
from xml.parsers import expat

import numpy as np

__all__ = [
    "CSV_COLUMNS",
    "Boxes",
    "boxes_to_mask",
    "read_box_csv",
    "read_voc",
]

CSV_COLUMNS = ("file", "x_min", "y_min", "x_max", "y_max")
_VOC_TAGS = ("xmin", "ymin", "xmax", "ymax")


@dataclasses.dataclass(frozen=True)
class Boxes:
    """The boxes of one image.

    Args:
        edges: ``(K, 4) float64`` pixel edges ``(x_start, y_start, x_stop,
            y_stop)``, 0-based, half-open; ``K`` may be 0 (no foreground).
        origins: One description per box for messages, naming the file,
            the object or row, and the coordinates as written.
        declared_size: ``(height, width)`` from a VOC ``<size>``, or None.
        source: The annotation file, for messages.
    """

    edges: np.ndarray
    origins: tuple
    declared_size: tuple | None
    source: str


def read_voc(path):
    """Reads the boxes of a Pascal VOC annotation file.

    Only ``<object>`` elements directly under ``<annotation>`` count (their
    ``<part>`` boxes do not); an annotation without objects is an image
    without foreground. DOCTYPE and ENTITY declarations are refused, so no
    entity is ever expanded or loaded.

    Returns:
        `Boxes`, with ``declared_size`` from ``<size>`` when it is present.

    Raises:
        ValueError: For unreadable or malformed XML, a declaration, a root
            other than ``<annotation>``, an object without a complete
            ``<bndbox>``, a non-numeric coordinate or ``xmax < xmin``.
    """
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"Cannot read annotation {shown!r} ({error.strerror}). Check "
            "its permissions or remove it."
        ) from None
    _check_plain_xml(data, shown)
    root = ElementTree.fromstring(data)
    if root.tag != "annotation":
        raise ValueError(
            f"Annotation {shown!r} has the root <{root.tag}>, expected "
            "Pascal VOC's <annotation>. Save boxes as <annotation><object>"
            "<bndbox><xmin>..."
        )
    edges, origins = [], []
    for number, element in enumerate(root.findall("object"), start=1):
        values = [element.findtext(f"bndbox/{tag}") for tag in _VOC_TAGS]
        origin = f"{shown!r} object {number}"
        if any(value is None for value in values):
            raise ValueError(
                f"{origin} lacks a <bndbox> with <xmin>, <ymin>, <xmax> and "
                "<ymax>. Add them or remove the object."
            )
        box = _numbers(values, _VOC_TAGS, origin)
        written = zip(_VOC_TAGS, values, strict=True)
        origins.append(
            f"{origin} ({', '.join(f'{t}={v}' for t, v in written)})"
        )
        edges.append(_edges(box, origins[-1], first_pixel=1))
    return Boxes(
        np.array(edges, np.float64).reshape(-1, 4),
        tuple(origins),
        _declared_size(root, shown),
        shown,
    )


def _check_plain_xml(data, shown):
    """Raises for malformed XML or any DOCTYPE or ENTITY declaration."""

    class Declared(Exception):
        pass

    def refuse(*_):
        raise Declared

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except Declared:
        raise ValueError(
            f"Annotation {shown!r} has a DOCTYPE or ENTITY declaration, "
            "which is refused (entities are never expanded). Remove the "
            "declaration; VOC annotations need none."
        ) from None
    except expat.ExpatError as error:
        raise ValueError(
            f"Annotation {shown!r} is not well-formed XML ({error}). Fix it "
            "or write it again in Pascal VOC form."
        ) from None


def _declared_size(root, shown):
    width, height = root.findtext("size/width"), root.findtext("size/height")
    if width is None or height is None:
        return None
    size = _numbers([height, width], ("height", "width"), f"{shown!r} <size>")
    if not all(n == int(n) and n > 0 for n in size):
        raise ValueError(
            f"{shown!r} <size> must hold positive whole numbers. Received: "
            f"width={width}, height={height}. Fix or remove <size>."
        )
    return (int(size[0]), int(size[1]))


def read_box_csv(path, files):
    """Reads a CSV of boxes, several rows per image.

    Args:
        path: The CSV file, UTF-8, header ``file,x_min,y_min,x_max,y_max``
            (more columns are ignored).
        files: ``{relative path: key}`` of the images the ``file`` column
            may name, e.g. ``{"circle/a.png": "circle/a"}``.

    Returns:
        ``{key: Boxes}`` for every image with a row. A row whose four
        coordinates are empty declares an image without foreground.

    Raises:
        ValueError: For missing columns, a non-numeric value, ``x_max <
            x_min``, or a row naming a file not in ``files``; the message
            names the file and the row's line.
    """
    shown = str(path)
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            _check_columns(reader.fieldnames, shown)
            for row in reader:
                line = reader.line_num
                name = unicodedata.normalize(
                    "NFC", (row["file"] or "").strip().replace("\\", "/")
                )
                if name not in files:
                    raise ValueError(
                        f"{shown!r} line {line} names {name!r}, which is "
                        "not an image of the data folder. Fix the path "
                        "(relative to DATA/images, e.g. circle/a.png) or "
                        "remove the row."
                    )
                rows.setdefault(files[name], []).append((line, row))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"Cannot read {shown!r} as a UTF-8 CSV ({error}). Save it as "
            "UTF-8 CSV with the header " + ",".join(CSV_COLUMNS) + "."
        ) from None
    return {key: _csv_boxes(found, shown) for key, found in rows.items()}


def _check_columns(header, shown):
    header = [name.strip() for name in header or []]
    missing = [name for name in CSV_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{shown!r} lacks the column(s) {', '.join(missing)}. Its "
            f"header is {','.join(header) or 'empty'!r}; expected "
            f"{','.join(CSV_COLUMNS)!r}."
        )


def _csv_boxes(rows, shown):
    edges, origins = [], []
    for line, row in rows:
        values = [(row[name] or "").strip() for name in CSV_COLUMNS[1:]]
        if not any(values):
            continue  # An image without foreground.
        origin = f"{shown!r} line {line}"
        box = _numbers(values, CSV_COLUMNS[1:], origin)
        origin += " (" + ", ".join(values) + ")"
        origins.append(origin)
        edges.append(_edges(box, origin, first_pixel=0))
    return Boxes(
        np.array(edges, np.float64).reshape(-1, 4), tuple(origins), None, shown
    )


def _numbers(values, names, origin):
    numbers = []
    for name, value in zip(names, values, strict=True):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(
                f"{origin}: {name} must be a number. Received: "
                f"{name}={value!r}. Write pixel coordinates."
            )
        numbers.append(number)
    return numbers


def _edges(box, origin, *, first_pixel):
    x_min, y_min, x_max, y_max = box
    if x_max < x_min or y_max < y_min:
        raise ValueError(
            f"{origin}: the box is inverted (x_max < x_min or y_max < "
            "y_min). Swap the coordinates."
        )
    start = float(first_pixel)  # The first pixel's coordinate.
    return (x_min - start, y_min - start, x_max - start + 1, y_max - start + 1)


def boxes_to_mask(boxes, image_size, *, size=None):
    """Rasterises `Boxes` into a foreground mask, the union of the boxes.

    A pixel is foreground when its centre lies inside a box scaled from
    ``image_size`` to ``size``; at the image's own size this is exactly the
    box's pixels, and it equals rasterising at full size followed by a
    nearest-neighbour resize. A box partly outside the image is clipped to
    it. A box thinner than one output pixel still marks the pixel holding
    its centre, so no box vanishes when the image shrinks.

    Args:
        boxes: `Boxes` of one image.
        image_size: ``(height, width)`` of the image the boxes refer to.
        size: ``(height, width)`` of the mask, or None for ``image_size``.

    Returns:
        ``(height, width) bool``; all False when there are no boxes.

    Raises:
        ValueError: If a VOC ``<size>`` differs from ``image_size``, or a
            box lies entirely outside the image.
    """
    height, width = image_size
    declared = boxes.declared_size
    if declared is not None and tuple(declared) != (height, width):
        raise ValueError(
            f"{boxes.source!r} declares the size {declared[1]}x{declared[0]} "
            f"(width x height) but its image is {width}x{height}. Annotate "
            "the image as displayed, or fix <size>."
        )
    out_height, out_width = size or image_size
    mask = np.zeros((out_height, out_width), bool)
    for (x_start, y_start, x_stop, y_stop), origin in zip(
        boxes.edges, boxes.origins, strict=True
    ):
        if x_stop <= 0 or y_stop <= 0 or x_start >= width or y_start >= height:
            raise ValueError(
                f"{origin}: the box lies outside the {width}x{height} image. "
                "Fix the coordinates (VOC XML counts from 1, boxes.csv from "
                "0) or remove the box."
            )
        rows = _span(y_start, y_stop, height, out_height)
        columns = _span(x_start, x_stop, width, out_width)
        mask[rows, columns] = True
    return mask


def _span(start, stop, extent, out):
    """Output pixels whose centres fall in ``[start, stop)``, scaled."""
    scale = out / extent
    start, stop = max(start, 0.0), min(stop, float(extent))
    first = math.ceil(round(start * scale - 0.5, 9))
    last = math.ceil(round(stop * scale - 0.5, 9))
    first, last = max(first, 0), min(last, out)
    if last <= first:
        centre = math.floor((start + stop) / 2 * scale)
        first = min(max(centre, 0), out - 1)
        last = first + 1
    return slice(first, last)
