"""The folder loader on boxes (VOC XML, CSV) and images as they come.

Expected values come from an independent route: masks from NumPy slices of
the boxes converted by hand, scaled masks from scikit-image's nearest
neighbour resize, oriented images from Pillow's `exif_transpose`, 16-bit
values from the integers written.
"""

import struct
import unicodedata
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage.transform import resize

from explain_attn.data import AlphaDroppedWarning, load_dataset
from explain_attn.data.images import read_image


def _rgb(seed, height=8, width=None):
    return np.random.default_rng(seed).integers(
        0, 256, (height, width or height, 3), dtype=np.uint8
    )


def _save(path, array, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)


def _voc(path, boxes, *, size=None):
    """Writes a VOC annotation with ``(xmin, ymin, xmax, ymax)`` boxes."""
    objects = "".join(
        "<object><name>thing</name><bndbox>"
        f"<xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
        "</bndbox></object>"
        for a, b, c, d in boxes
    )
    declared = (
        ""
        if size is None
        else f"<size><width>{size[1]}</width><height>{size[0]}</height>"
        "<depth>3</depth></size>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>x</filename>{declared}{objects}</annotation>",
        encoding="utf-8",
    )


def _png16(path, array):
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB)."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[-1]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]  # Gray, RGB, RGBA.

    def chunk(kind, data):
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00" + array[y].astype(">u2").tobytes() for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _expected(height, width, *slices):
    mask = np.zeros((height, width), bool)
    for rows, columns in slices:
        mask[rows, columns] = True
    return mask


# ------------------------------------------------------------------ boxes


def test_voc_boxes_are_one_based_inclusive_and_united(tmp_path):
    _save(tmp_path / "images/a/x.png", _rgb(0, 8, 10))
    # Pixels (column 2..4, row 3..5) 1-based = [1:4] and [2:5] 0-based.
    _voc(tmp_path / "annotations/a/x.xml", [(2, 3, 4, 5), (4, 1, 10, 1)])
    dataset = load_dataset(tmp_path)
    expected = _expected(
        8, 10, (slice(2, 5), slice(1, 4)), (slice(0, 1), slice(3, 10))
    )
    np.testing.assert_array_equal(dataset.masks[0], expected)


def test_voc_whole_image_box_and_declared_size(tmp_path):
    _save(tmp_path / "images/a/x.png", _rgb(0, 6, 7))
    _voc(tmp_path / "annotations/a/x.xml", [(1, 1, 7, 6)], size=(6, 7))
    assert load_dataset(tmp_path).masks[0].all()


def test_csv_boxes_are_zero_based_with_rows_per_image(tmp_path):
    for name in ("a/x.png", "a/y.jpg", "b/z.png"):
        _save(tmp_path / "images" / name, _rgb(1, 8))
    (tmp_path / "boxes.csv").write_text(
        "file,x_min,y_min,x_max,y_max,label\n"
        "a/x.png,0,0,1,2,cell\n"
        "a/x.png,6,6,7,7,cell\n"
        "b/z.png,,,,,\n"  # Declared: no foreground.
        "a/y.jpg,2.0,3,2,3,\n",
        encoding="utf-8",
    )
    dataset = load_dataset(tmp_path)
    np.testing.assert_array_equal(
        dataset.masks[0],
        _expected(8, 8, (slice(0, 3), slice(0, 2)), (slice(6, 8), slice(6, 8))),
    )
    np.testing.assert_array_equal(
        dataset.masks[1], _expected(8, 8, (slice(3, 4), slice(2, 3)))
    )
    assert not dataset.masks[2].any()


def test_box_partly_outside_is_clipped(tmp_path):
    _save(tmp_path / "images/a/x.png", _rgb(0, 8))
    _voc(tmp_path / "annotations/a/x.xml", [(-3, 5, 12, 20)])
    expected = _expected(8, 8, (slice(4, 8), slice(0, 8)))
    np.testing.assert_array_equal(load_dataset(tmp_path).masks[0], expected)


def test_boxes_scale_with_the_image_like_a_nearest_resized_mask(tmp_path):
    # 15x20 -> 6x8 (scale 0.4): no output pixel centre falls on a pixel
    # edge, so nearest neighbour is unambiguous.
    _save(tmp_path / "images/a/x.png", _rgb(0, 15, 20))
    (tmp_path / "boxes.csv").write_text(
        "file,x_min,y_min,x_max,y_max\na/x.png,3,2,11,9\na/x.png,14,0,19,3\n"
    )
    full = _expected(
        15, 20, (slice(2, 10), slice(3, 12)), (slice(0, 4), slice(14, 20))
    )
    reference = resize(
        full, (6, 8), order=0, anti_aliasing=False, preserve_range=True
    ).astype(bool)
    dataset = load_dataset(tmp_path, image_size=(6, 8))
    np.testing.assert_array_equal(dataset.masks[0], reference)


def test_a_box_thinner_than_a_pixel_keeps_one_pixel(tmp_path):
    _save(tmp_path / "images/a/x.png", _rgb(0, 16))
    _voc(tmp_path / "annotations/a/x.xml", [(6, 6, 6, 6)])  # One pixel.
    mask = load_dataset(tmp_path, image_size=4).masks[0]
    # Pixel 5 (0-based), centre 5.5, lies in output pixel floor(5.5/4) = 1.
    np.testing.assert_array_equal(mask, _expected(4, 4, (1, 1)))


def test_masks_win_over_boxes_and_may_mix_with_them(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2, 3] = 255
    for name in ("a/x", "b/y"):
        _save(tmp_path / f"images/{name}.png", _rgb(2))
    _save(tmp_path / "masks/a/x.png", mask)
    _voc(tmp_path / "annotations/a/x.xml", [(1, 1, 8, 8)])
    _voc(tmp_path / "annotations/b/y.xml", [(1, 1, 2, 2)])
    dataset = load_dataset(tmp_path)
    np.testing.assert_array_equal(dataset.masks[0], mask > 0)
    np.testing.assert_array_equal(
        dataset.masks[1], _expected(8, 8, (slice(0, 2), slice(0, 2)))
    )


def test_annotation_without_objects_is_an_empty_mask(tmp_path):
    _save(tmp_path / "images/a/x.png", _rgb(0))
    _voc(tmp_path / "annotations/a/x.xml", [])
    assert not load_dataset(tmp_path).masks.any()


def test_names_with_spaces_and_accents_match_their_boxes(tmp_path):
    name = "Blüte ñ 1.png"
    _save(tmp_path / "images/café au lait" / name, _rgb(3))
    _save(tmp_path / "images/b/y.png", _rgb(4))
    (tmp_path / "boxes.csv").write_text(
        "file,x_min,y_min,x_max,y_max\n"
        f'"café au lait/{name}",1,1,2,2\nb/y.png,0,0,0,0\n',
        encoding="utf-8",
    )
    dataset = load_dataset(tmp_path)
    assert dataset.class_names == ("b", "café au lait")
    np.testing.assert_array_equal(
        dataset.masks[1], _expected(8, 8, (slice(1, 3), slice(1, 3)))
    )


def test_decomposed_file_names_match_composed_csv_rows(tmp_path):
    # macOS stores "é" as "e" + combining accent; a CSV usually holds "é".
    decomposed = unicodedata.normalize("NFD", "crème.png")
    _save(tmp_path / "images/a" / decomposed, _rgb(3))
    (tmp_path / "boxes.csv").write_text(
        "file,x_min,y_min,x_max,y_max\na/crème.png,0,0,0,0\n", encoding="utf-8"
    )
    np.testing.assert_array_equal(
        load_dataset(tmp_path).masks[0], _expected(8, 8, (0, 0))
    )


def _box_case(root, case):
    _save(root / "images/a/x.png", _rgb(0))
    _save(root / "images/b/y.png", _rgb(1))
    voc = root / "annotations"
    if case.startswith("csv"):
        header = "file,x_min,y_min,x_max,y_max\n"
        rows = {
            "csv_columns": "file,x_min,y_min,x_max\na/x.png,1,1,2\n",
            "csv_number": header + "a/x.png,1,one,2,3\n",
            "csv_unknown": header + "a/ghost.png,1,1,2,2\n",
            "csv_inverted": header + "b/y.png,5,1,2,2\n",
            "csv_outside": header + "b/y.png,8,0,9,1\n",
        }[case]
        (root / "boxes.csv").write_text(
            rows + "a/x.png,0,0,1,1\nb/y.png,0,0,1,1\n"
        )
        return root
    _voc(voc / "a/x.xml", [(1, 1, 2, 2)])
    bad = voc / "b/y.xml"
    bad.parent.mkdir()
    if case == "malformed":
        bad.write_text("<annotation><object></annotation>")
    elif case == "entity":
        secret = root / "secret.txt"
        secret.write_text("do not read")
        bad.write_text(
            f'<!DOCTYPE a [<!ENTITY s SYSTEM "file://{secret}">]>'
            "<annotation><filename>&s;</filename></annotation>"
        )
    elif case == "root":
        bad.write_text("<boxes/>")
    elif case == "no_bndbox":
        bad.write_text(
            "<annotation><object><name>c</name></object></annotation>"
        )
    elif case == "inverted":
        _voc(bad, [(5, 1, 2, 3)])
    elif case == "outside":
        _voc(bad, [(9, 9, 12, 12)])
    elif case == "declared_size":
        _voc(bad, [(1, 1, 2, 2)], size=(480, 640))
    elif case == "missing":
        pass  # b/y.xml is not written.
    elif case == "orphan":
        _voc(voc / "b/ghost.xml", [(1, 1, 2, 2)])
        _voc(bad, [(1, 1, 2, 2)])
    elif case == "both_formats":
        _voc(bad, [(1, 1, 2, 2)])
        (root / "boxes.csv").write_text("file,x_min,y_min,x_max,y_max\n")
    elif case == "twins":
        _voc(bad, [(1, 1, 2, 2)])
        _save(root / "images/b/y.jpg", _rgb(2))
    elif case == "not_xml":
        _voc(bad, [(1, 1, 2, 2)])
        (voc / "b/notes.txt").write_text("hello")
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("malformed", r"Annotation '.*b/y\.xml' is not well-formed XML"),
        ("entity", r"'.*b/y\.xml' has a DOCTYPE or ENTITY .*Remove"),
        ("root", r"'.*b/y\.xml' has the root <boxes>, expected .*VOC"),
        ("no_bndbox", r"'.*b/y\.xml' object 1 lacks a <bndbox>"),
        ("inverted", r"'.*b/y\.xml' object 1 \(xmin=5.*inverted.*Swap"),
        ("outside", r"object 1 \(xmin=9.*outside the 8x8 image.*from 1"),
        ("declared_size", r"'.*b/y\.xml' declares the size 640x480 .*8x8"),
        ("missing", r"1 image\(s\) have no mask or boxes .*e\.g\. b/y\. Add"),
        ("orphan", r"1 annotation\(s\) in '.*' have no image, e\.g\. b/ghost"),
        ("both_formats", r"both annotations/ and boxes\.csv\. Keep one"),
        ("twins", r"1 name\(s\) .* two images, e\.g\. b/y\. .*rename"),
        ("not_xml", r"Unsupported file '.*notes\.txt'.*\.xml"),
        ("csv_columns", r"boxes\.csv' lacks the column\(s\) y_max\. Its"),
        ("csv_number", r"boxes\.csv' line 2: y_min must be a number.*'one'"),
        ("csv_unknown", r"line 2 names 'a/ghost\.png', which is not an image"),
        ("csv_inverted", r"line 2 \(5, 1, 2, 2\): the box is inverted"),
        ("csv_outside", r"line 2 \(8, 0, 9, 1\): .*outside the 8x8 image"),
    ],
)
def test_bad_boxes_name_the_file_and_the_fix(tmp_path, case, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(_box_case(tmp_path, case))


# ----------------------------------------------------------------- images


def test_sixteen_bit_pngs_are_divided_by_65535(tmp_path):
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 65536, (6, 6), dtype=np.uint16)
    colour = rng.integers(0, 65536, (6, 6, 3), dtype=np.uint16)
    _png16(tmp_path / "images/a/gray.png", gray)
    _png16(tmp_path / "images/a/rgb.png", colour)
    images = load_dataset(tmp_path).images
    for channel in range(3):
        np.testing.assert_array_equal(
            images[0, ..., channel], gray / np.float32(65535)
        )
    # Every bit counts: the low byte is kept, not only the high one.
    np.testing.assert_array_equal(images[1], colour / np.float32(65535))


def test_transparency_warns_once_per_load_and_alpha_is_dropped(tmp_path):
    rgba = [
        np.dstack([_rgb(i), np.full((8, 8), 9, np.uint8)]) for i in range(3)
    ]
    for index, array in enumerate(rgba):
        _save(tmp_path / f"images/a/t{index}.png", array)
    opaque = np.dstack([_rgb(7), np.full((8, 8), 255, np.uint8)])
    _save(tmp_path / "images/a/z_opaque.png", opaque)
    with pytest.warns(AlphaDroppedWarning) as record:
        dataset = load_dataset(tmp_path)
    assert len(record) == 1
    assert "3 of 4 image(s)" in str(record[0].message)
    assert "a/t0.png" in str(record[0].message)
    for index, array in enumerate([*rgba, opaque]):
        np.testing.assert_array_equal(
            dataset.images[index], array[..., :3] / np.float32(255)
        )


def test_opaque_alpha_does_not_warn(tmp_path):
    opaque = np.dstack([_rgb(7), np.full((8, 8), 255, np.uint8)])
    _save(tmp_path / "images/a/x.png", opaque)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(tmp_path)


def test_palette_images_become_their_palette_colours(tmp_path):
    palette = np.random.default_rng(8).integers(0, 256, (256, 3), np.uint8)
    indices = np.random.default_rng(9).integers(0, 256, (8, 8), np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.tobytes())
    (tmp_path / "images/a").mkdir(parents=True)
    image.save(tmp_path / "images/a/x.png")
    loaded = load_dataset(tmp_path).images[0]
    np.testing.assert_array_equal(loaded, palette[indices] / np.float32(255))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_image_and_boxes(tmp_path, orientation):
    stored = _rgb(11, 6, 9)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "images/a/x.png"
    _save(path, stored, exif=exif.tobytes())
    with Image.open(path) as image:
        displayed = np.asarray(ImageOps.exif_transpose(image))
    # A box on the displayed image: its top-left 2x3 pixels.
    _voc(tmp_path / "annotations/a/x.xml", [(1, 1, 3, 2)])
    dataset = load_dataset(tmp_path)
    np.testing.assert_array_equal(
        dataset.images[0], displayed / np.float32(255)
    )
    np.testing.assert_array_equal(
        dataset.masks[0],
        _expected(*displayed.shape[:2], (slice(0, 2), slice(0, 3))),
    )


def test_jpeg_and_png_mix_in_one_class(tmp_path):
    smooth = np.full((8, 8, 3), (30, 160, 220), np.uint8)
    _save(tmp_path / "images/a/one.jpg", smooth, quality=95)
    _save(tmp_path / "images/a/two.png", _rgb(12))
    _save(tmp_path / "images/b/three.jpeg", smooth, quality=95)
    dataset = load_dataset(tmp_path)
    assert dataset.labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(dataset.images[0], smooth / 255.0, atol=3 / 255)
    np.testing.assert_array_equal(dataset.images[1], _rgb(12) / np.float32(255))


def _gradient(height, width):
    rows, columns = np.mgrid[0:height, 0:width]
    return np.dstack(
        [rows * 255 // height, columns * 255 // width, (rows + columns) % 256]
    ).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_large_images_decode_at_reduced_size(tmp_path, suffix):
    path = tmp_path / f"big{suffix}"
    _save(
        path,
        _gradient(256, 320),
        **({"quality": 95} if suffix == ".jpg" else {}),
    )
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB")) / np.float32(255)
    decoded = read_image(path, size=(30, 32))
    # Reduced by 8 (JPEG decoder scale, or box averaging), never below the
    # target size.
    assert decoded.decoded_size == (32, 40)
    assert decoded.original_size == (256, 320)
    reference = resize(full, (30, 32), order=1, anti_aliasing=True)
    assert decoded.pixels.shape == (30, 32, 3)
    assert np.abs(decoded.pixels - reference).mean() < 0.02


def test_reduced_decoding_keeps_boxes_in_original_coordinates(tmp_path):
    _save(tmp_path / "images/a/x.jpg", _gradient(256, 320), quality=90)
    # The right half, 1-based: columns 161..320.
    _voc(
        tmp_path / "annotations/a/x.xml", [(161, 1, 320, 256)], size=(256, 320)
    )
    dataset = load_dataset(tmp_path, image_size=(8, 10))
    np.testing.assert_array_equal(
        dataset.masks[0], _expected(8, 10, (slice(0, 8), slice(5, 10)))
    )
