"""Image and mask files decoded into arrays, and resized.

`read_image` accepts images as they come: 8- and 16-bit PNGs (16-bit
colour through TensorFlow's PNG decoder, since Pillow keeps only 8 bits of
them), grayscale, palette and RGBA images, JPEGs with an EXIF orientation,
and BMPs. Every image becomes ``(H, W, 3) float32`` in [0, 1] as displayed
(EXIF orientation applied). With a target size, a large JPEG is decoded at
a reduced scale (1/2, 1/4 or 1/8) and other large images (but 16-bit
colour PNGs) are box-averaged by an integer factor before the anti-aliased
resize, never below the target size.
"""

import dataclasses
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "AlphaDroppedWarning",
    "DecodedImage",
    "SCALES",
    "check_scale",
    "check_scale_range",
    "check_unit_range",
    "displayed_size",
    "match_channels",
    "orient",
    "read_image",
    "read_label_mask",
    "read_mask",
    "resize_image",
    "resize_mask",
    "to_rgb_float",
    "to_unit_float",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

_ORIENTATION_TAG = 0x0112  # EXIF "Orientation", 1 (as stored) to 8.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class AlphaDroppedWarning(UserWarning):
    """Images with transparent pixels were loaded without their alpha.

    `load_dataset` warns once per folder, naming how many images had
    transparent pixels and one of them.
    """


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """One decoded image file.

    Args:
        pixels: ``(H, W, C) float32`` in [0, 1], at the requested size (or
            the original size when none was requested).
        original_size: ``(height, width)`` of the image as displayed, i.e.
            after its EXIF orientation, at full resolution. Masks and boxes
            refer to this size.
        decoded_size: ``(height, width)`` at which the file was decoded,
            before the final resize: smaller than ``original_size`` when a
            large image was decoded at reduced size.
        dropped_alpha: True if the file had an alpha channel with at least
            one transparent pixel (the alpha was dropped).
        converted: True if its channels were converted (gray to RGB or
            RGB to gray) to the requested count.
    """

    pixels: np.ndarray
    original_size: tuple
    decoded_size: tuple
    dropped_alpha: bool
    converted: bool = False


def read_image(path, *, size=None, channels=3):
    """Reads an image file as floats in [0, 1] (RGB or gray).

    Args:
        path: An image file (PNG, JPEG, BMP).
        size: None to keep the size, or ``(height, width)`` to resize to.
        channels: 3 for RGB (gray is repeated), 1 for gray (RGB becomes
            gray by `skimage.color.rgb2gray`); see `match_channels`.

    Returns:
        A `DecodedImage`. 8-bit values are divided by 255, 16-bit ones by
        65535; grayscale is repeated into 3 channels; palette images are
        converted to RGB; alpha is dropped; the EXIF orientation is applied.

    Raises:
        ValueError: If the file is not a readable image (the message names
            it), or is larger than Pillow's decompression-bomb limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            orientation = orientation if orientation in range(1, 9) else 1
            stored = (image.height, image.width)
            target = size
            if size is not None and orientation >= 5:
                target = (size[1], size[0])  # Stored sideways.
            array = _decode(image, Path(path), target)
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        Image.DecompressionBombError,
    ) as error:
        raise ValueError(
            f"Cannot read image {str(path)!r}: it is corrupt or not an image "
            f"({' '.join(str(error).split())[:100]}). Replace or remove it."
        ) from None
    array = orient(array, orientation)
    original = stored if orientation < 5 else (stored[1], stored[0])
    dropped_alpha = _has_transparency(array)
    pixels = to_unit_float(array, str(path), batched=False)
    pixels, converted = match_channels(pixels, channels, str(path))
    if size is not None:
        pixels = resize_image(pixels, size)
    return DecodedImage(
        pixels, original, array.shape[:2], dropped_alpha, bool(converted)
    )


def displayed_size(path):
    """``(height, width)`` of an image as displayed, from its header only.

    Returns None when the header cannot be read (`read_image` then names
    the problem).
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            height, width = image.height, image.width
    except Exception:  # Any unreadable file: reported when decoded.
        return None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _decode(image, path, target):
    """The stored pixels as an array, reduced towards ``target``."""
    if _is_colour_png16(path):
        return _decode_png16(path)
    if target is not None and image.format == "JPEG":
        # The decoder picks the largest of 1/2, 1/4, 1/8 that keeps the
        # image at least as large as the target.
        image.draft(None, (target[1], target[0]))
    image.load()
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode.startswith("I;16"):
        image = image.convert("I")
    if target is not None:
        factor = min(image.height // target[0], image.width // target[1])
        if factor >= 2:
            image = image.reduce(factor)
    array = np.asarray(image)
    if array.dtype == np.int32:  # Mode "I": 16-bit grayscale.
        array = np.clip(array, 0, 65535).astype(np.uint16)
    return array


def _is_colour_png16(path):
    """True for a 16-bit PNG with colour or alpha (Pillow cuts to 8 bits)."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    return (
        header[:8] == _PNG_SIGNATURE
        and header[12:16] == b"IHDR"
        and header[24] == 16
        and header[25] in (2, 4, 6)  # RGB, gray + alpha, RGBA.
    )


def _decode_png16(path):
    import tensorflow as tf

    try:
        decoded = tf.io.decode_png(
            path.read_bytes(), channels=0, dtype=tf.uint16
        )
    except tf.errors.OpError as error:
        raise ValueError(error.message) from None
    return decoded.numpy()


def orient(array, orientation):
    """Applies an EXIF orientation (1 to 8) to an ``(H, W[, C])`` array.

    The result is the image as displayed, as `PIL.ImageOps.exif_transpose`
    gives it: 2 mirrors left-right, 3 rotates 180 degrees, 4 mirrors
    top-bottom, 5 transposes, 6 rotates 90 degrees clockwise, 7 transposes
    across the anti-diagonal, 8 rotates 90 degrees counter-clockwise.
    """
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return np.swapaxes(array, 0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1)
    if orientation == 7:
        return np.swapaxes(array[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def _has_transparency(array):
    if array.ndim != 3 or array.shape[-1] not in (2, 4):
        return False
    opaque = np.iinfo(array.dtype).max if array.dtype.kind in "ui" else 1.0
    return bool((array[..., -1] < opaque).any())


def _mask_pixels(path, *, palette_as_colours):
    """``(pixels as stored, EXIF orientation)`` of a mask file; a palette
    image as its colours or (label masks) as its indices.

    Raises:
        ValueError: If the file is not a readable image (named).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            image.load()
            if palette_as_colours and image.mode == "P":
                image = image.convert("RGB")
            return np.asarray(image), orientation
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        Image.DecompressionBombError,
    ) as error:
        raise ValueError(
            f"Cannot read mask {str(path)!r}: it is corrupt or not an image "
            f"({' '.join(str(error).split())[:100]}). Replace or remove it."
        ) from None


def read_mask(path):
    """Reads a mask file as ``(H, W) bool``: non-zero is foreground.

    The EXIF orientation, if any, is applied, as for images. A colour mask
    is foreground where any colour channel is non-zero.

    Raises:
        ValueError: If the file is not a readable image (named).
    """
    array, orientation = _mask_pixels(path, palette_as_colours=True)
    if array.ndim == 3:
        array = array[..., : 1 if array.shape[-1] == 2 else 3].any(axis=-1)
    return orient(array != 0, orientation)


def read_label_mask(path, num_labels):
    """Reads a label mask as ``(H, W) uint8``: each pixel's value is its
    label (0 the background, ``1 .. num_labels - 1`` the classes).

    A grey (or palette, by index) PNG; the EXIF orientation is applied.

    Raises:
        ValueError: If the file is not a readable one-channel image, or a
            value falls outside the labels (named, with the fix).
    """
    array, orientation = _mask_pixels(path, palette_as_colours=False)
    if array.ndim != 2:
        raise ValueError(
            f"Label mask {str(path)!r} has {array.shape[-1]} channels; a "
            "label mask is one channel (grey or palette), a label per "
            "pixel. Save it as a grey PNG."
        )
    if array.size and int(array.max()) >= num_labels:
        raise ValueError(
            f"Label mask {str(path)!r} holds the label value "
            f"{int(array.max())}, outside the {num_labels - 1} classes of "
            "masks/labels.txt (and 0, the background). Add the class to "
            "labels.txt or correct the mask."
        )
    return orient(array.astype(np.uint8), orientation)


SCALES = ("unit", "byte", "symmetric")
"""Value scales of float images: [0, 1], [0, 255] and [-1, 1]."""

_SCALE_RANGES = {
    "unit": (0.0, 1.0),
    "byte": (0.0, 255.0),
    "symmetric": (-1.0, 1.0),
}
_SCALE_WORDS = {
    "unit": "[0, 1]",
    "byte": "[0, 255]",
    "symmetric": "[-1, 1]",
}


def check_scale(scale):
    """Raises a `ValueError` unless ``scale`` is one of `SCALES`."""
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(
            f"Unknown input scale. Received: input_scale={scale!r}. Expected "
            "one of: unit ([0, 1]), byte ([0, 255]), symmetric ([-1, 1])."
        )
    return scale


def to_unit_float(array, source, *, batched, scale="unit"):
    """``(H, W[, C])`` or ``(N, H, W[, C])`` any dtype -> float32 in [0, 1].

    uint8 is divided by 255 and uint16 by 65535 whatever ``scale`` says;
    floats are read in ``scale``: ``"unit"`` [0, 1] as is, ``"byte"``
    [0, 255] divided by 255, ``"symmetric"`` [-1, 1] as ``(x + 1) / 2``.
    One channel stays one (gray), gray + alpha becomes gray, RGBA becomes
    RGB; see `match_channels` to change the count.

    Returns:
        ``(N, H, W, 1)`` or ``(N, H, W, 3)`` float32 (without ``N`` when
        not ``batched``).

    Raises:
        ValueError: For another dtype or shape, NaN, or float values
            outside ``scale`` (the message names the scale that fits).
    """
    check_scale(scale)
    if not batched:
        array = array[None]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"Images in {source!r} must be (N, H, W), (N, H, W, 1), "
            f"(N, H, W, 3) or (N, H, W, 4). Received: shape={array.shape}"
        )
    array = array[..., :1] if array.shape[-1] in (1, 2) else array[..., :3]
    # Not skimage.util.img_as_float32: it multiplies by the reciprocal and
    # differs from x / 255 by one float32 ulp (6e-8) in 126 of the 256 uint8
    # values, which would change every dataset fingerprint (the demo cache
    # keys) for no gain.
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        array = _float_to_unit(array, source, scale)
    else:
        raise ValueError(
            f"Images in {source!r} must be uint8, uint16 or floats. "
            f"Received: dtype={array.dtype}. Convert them, e.g. to uint8."
        )
    return array if batched else array[0]


def _float_to_unit(array, source, scale):
    check_scale_range(array, source, scale)
    array = array.astype(np.float32, copy=False)
    if scale == "byte":
        return array / np.float32(255.0)
    if scale == "symmetric":
        return (array + np.float32(1.0)) / np.float32(2.0)
    return array


def check_scale_range(array, source, scale):
    """Raises a `ValueError` for NaN or float values outside ``scale``.

    The message names the scale the values fit, if one does.
    """
    if np.isnan(array).any():
        raise ValueError(
            f"Images in {source!r} contain NaN. Clean or drop those images."
        )
    low, high = float(array.min()), float(array.max())
    bottom, top = _SCALE_RANGES[scale]
    if bottom <= low and high <= top:
        return
    fits = [
        name for name, (b, t) in _SCALE_RANGES.items() if b <= low and high <= t
    ]
    hint = (
        f"Pass input_scale={fits[0]!r} (--input-scale {fits[0]}) if they "
        f"are {_SCALE_WORDS[fits[0]]} values"
        if fits
        else "Rescale them to [0, 1]"
    )
    raise ValueError(
        f"Image values in {source!r} must lie in {_SCALE_WORDS[scale]} for "
        f"the input scale {scale!r}. Received: min={low:g}, max={high:g}. "
        f"{hint}."
    )


def match_channels(images, channels, source):
    """``(..., C)`` images with ``channels`` channels, and what was done.

    One channel is repeated into three for a 3-channel model; RGB becomes
    gray by `skimage.color.rgb2gray` (ITU-R 709 luma) for a 1-channel
    model; matching images are returned as they are.

    Returns:
        ``(images, note)``: the note says which conversion was made, or is
        ``""`` when none was.

    Raises:
        ValueError: If ``channels`` is not 1 or 3.
    """
    have = images.shape[-1]
    if channels == have:
        return images, ""
    if channels == 3 and have == 1:
        return np.repeat(images, 3, axis=-1), (
            f"gray images in {source!r} were repeated into 3 channels (RGB)"
        )
    if channels == 1 and have == 3:
        from skimage.color import rgb2gray

        gray = rgb2gray(images).astype(np.float32)[..., None]
        return gray, (
            f"RGB images in {source!r} were converted to 1 channel by "
            "skimage.color.rgb2gray"
        )
    raise ValueError(
        f"The model takes {channels} channel(s) but images in {source!r} "
        f"have {have}, and only gray (1) and RGB (3) can be made. Use a "
        "model that takes 1 or 3 channels, or convert the images yourself."
    )


def to_rgb_float(array, source, *, batched):
    """``(H, W[, C])`` or ``(N, H, W[, C])`` any dtype -> float RGB [0, 1].

    uint8 is divided by 255, uint16 by 65535; floats are kept. One channel
    (or gray + alpha) is repeated into three; a fourth channel is dropped.

    Raises:
        ValueError: For another dtype or shape, NaN or values outside
            [0, 1] (``source`` names the data in the message).
    """
    array = to_unit_float(array, source, batched=batched)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def check_unit_range(images, source):
    """Raises a `ValueError` for NaN or values outside [0, 1]."""
    if np.isnan(images).any():
        raise ValueError(
            f"Images in {source!r} contain NaN. Clean or drop those images."
        )
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"Image values in {source!r} must lie in [0, 1] after scaling. "
            f"Received: min={low:g}, max={high:g}. Store uint8 (0-255) or "
            "floats divided by their maximum."
        )


def resize_image(image, size):
    """Resizes ``(H, W, C)`` floats to ``size``, anti-aliased (bilinear)."""
    from skimage.transform import resize

    if image.shape[:2] == tuple(size):
        return image
    resized = resize(
        image, size, order=1, anti_aliasing=True, preserve_range=True
    )
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def resize_mask(mask, size):
    """Resizes an ``(H, W)`` bool (or integer label) mask to ``size`` by
    nearest neighbour; the dtype is kept."""
    from skimage.transform import resize

    if mask.shape == tuple(size):
        return mask
    return resize(
        mask, size, order=0, anti_aliasing=False, preserve_range=True
    ).astype(mask.dtype)
