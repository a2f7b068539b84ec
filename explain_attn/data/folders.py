"""The folder layout: image files by class, and their foreground.

A data folder ``DATA`` holds::

    DATA/images/<class>/<name>.<ext>      .png, .jpg, .jpeg or .bmp
    DATA/masks/<class>/<name>.png         optional masks, non-zero = fg
    DATA/masks/labels.txt                 optional: masks are label maps
    DATA/annotations/<class>/<name>.xml   optional Pascal VOC boxes, or
    DATA/boxes.csv                        optional boxes, one per row

Masks and boxes may be mixed within a folder, but every image then needs
one of them: an image without any is an error (an annotation without
``<object>``, or a CSV row with empty coordinates, marks an image without
foreground: its mask is empty). Where an image has both a mask and boxes,
the mask wins: it is the finer outline of the same foreground. Use either
``annotations/`` or ``boxes.csv``, not both. Masks and annotations are
matched to images by class and name without suffix, so one class may not
hold two images of the same name (``a.png`` and ``a.jpg``) when they are
used. Box coordinates: see `explain_attn.data.annotations`.

Multi-class masks: with ``masks/labels.txt`` (one class name a line), each
mask is a label map, a grey PNG whose pixel value is the pixel's class: 0
the background, ``k`` the ``k``-th name of the file. An image may then hold
several classes; a segmentation model is scored on them class by class.
Label masks do not mix with boxes, and a value beyond the names is refused.
"""

import collections
import dataclasses
import os
import unicodedata

from explain_attn.data.annotations import (
    boxes_to_mask,
    read_box_csv,
    read_voc,
)
from explain_attn.data.images import (
    IMAGE_SUFFIXES,
    read_label_mask,
    read_mask,
    resize_mask,
)

__all__ = [
    "ANNOTATIONS",
    "BOX_CSV",
    "MASKS",
    "Folder",
    "foreground_mask",
    "list_folder",
]

MASKS = "masks"
LABELS = "labels.txt"
ANNOTATIONS = "annotations"
BOX_CSV = "boxes.csv"

_SHOWN = 3  # How many offending file names an error message lists.
_NOUNS = {"mask": "mask", "voc": "annotation"}


@dataclasses.dataclass(frozen=True)
class Folder:
    """The files of a data folder, found and matched, not yet read.

    Args:
        class_names: The class folder names, sorted.
        files: ``(key, path, label)`` per image, by class then name; the
            key is ``"<class>/<name without suffix>"``.
        foreground: None when the folder has no masks or boxes, else
            ``{key: source}`` for every image, where a source is
            ``("mask", path)``, ``("voc", path)`` or ``("boxes", Boxes)``
            (from ``boxes.csv``); read it with `foreground_mask`.
        mask_labels: The class names of label masks (``masks/labels.txt``),
            or None for foreground masks.
    """

    class_names: tuple
    files: list
    foreground: dict | None
    mask_labels: tuple | None = None


def list_folder(directory):
    """Finds the images of a data folder and the foreground of each.

    Raises:
        ValueError: For an empty folder, no class folders, a class without
            images, a file that is not an image, masks or annotations
            without an image, images without masks or boxes (when some
            have them), ``annotations/`` beside ``boxes.csv``, two images
            of one name, or a bad ``boxes.csv``.
    """
    shown = str(directory)
    if not any(directory.iterdir()):
        raise ValueError(
            f"Data folder {shown!r} is empty. Put images in "
            f"{shown}/images/<class>/<name>.png (masks, optional, in "
            f"{shown}/masks/<class>/<name>.png)."
        )
    image_root = directory / "images"
    classes = _class_folders(image_root) if image_root.is_dir() else []
    if not classes:
        raise ValueError(
            f"No class folders in {str(image_root)!r}. Expected one folder "
            "per class: DIR/images/<class>/<name>.png (and optional "
            "DIR/masks/<class>/<name>.png)."
        )
    files = []
    for label, class_name in enumerate(classes):
        found = _image_files(image_root / class_name)
        if not found:
            raise ValueError(
                f"Class folder {str(image_root / class_name)!r} has no "
                f"images ({', '.join(IMAGE_SUFFIXES)}). Add images or "
                "remove the folder."
            )
        files.extend((_key(class_name, p.stem), p, label) for p in found)
    foreground = _foreground(directory, files)
    mask_labels = _mask_labels(directory, foreground)
    return Folder(tuple(classes), files, foreground, mask_labels)


def _mask_labels(directory, foreground):
    """The names of ``masks/labels.txt``, or None without the file."""
    path = directory / MASKS / LABELS
    if not path.is_file():
        return None
    names = tuple(
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    if not names or len(set(names)) < len(names):
        raise ValueError(
            f"{str(path)!r} must name each class of the label masks once, "
            f"one a line (value 1 the first). Received: {len(names)} "
            f"name(s), {len(set(names))} distinct"
        )
    if any(kind != "mask" for kind, _ in foreground.values()):
        raise ValueError(
            f"{str(directory)!r} has label masks ({MASKS}/{LABELS}) and boxes; "
            "boxes have no label value. Draw the boxes into the label masks "
            f"or remove {MASKS}/{LABELS}."
        )
    return names


def _unreadable(path, error):
    return ValueError(
        f"Cannot read {str(path)!r} in the data folder: {error.strerror} "
        f"({type(error).__name__}). Fix or remove it."
    )


def _class_folders(image_root):
    """The class folder names in ``image_root``; an entry that cannot be
    read (a symlink loop, a broken link, no permission) is an error."""
    classes = []
    for entry in sorted(image_root.iterdir()):
        if entry.name.startswith("."):
            continue
        try:
            entry.stat()  # Follows links: ELOOP, ENOENT, EACCES.
            if entry.is_dir():
                with os.scandir(entry) as listing:  # EACCES.
                    next(listing, None)
                classes.append(entry.name)
        except OSError as error:
            raise _unreadable(entry, error) from None
    return classes


def _key(class_name, name):
    """``"<class>/<name>"``, NFC-normalised."""
    # NFC: macOS may store names decomposed, a CSV holds them composed.
    return unicodedata.normalize("NFC", f"{class_name}/{name}")


def _image_files(folder):
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise _unreadable(folder, error) from None
    for path in entries:
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"Unsupported file {str(path)!r}: images must end in "
                f"{', '.join(IMAGE_SUFFIXES)}. Convert it or move it out of "
                "the data folder."
            )
        found.append(path)
    return found


def _foreground(directory, files):
    mask_root = directory / MASKS
    voc_root = directory / ANNOTATIONS
    csv_path = directory / BOX_CSV
    if not (mask_root.is_dir() or voc_root.is_dir() or csv_path.is_file()):
        return None
    if voc_root.is_dir() and csv_path.is_file():
        raise ValueError(
            f"{str(directory)!r} has both {ANNOTATIONS}/ and {BOX_CSV}. Keep "
            "one box format: move the boxes of one into the other."
        )
    keys = [key for key, _, _ in files]
    if len(set(keys)) < len(keys):
        counts = collections.Counter(keys)
        twins = sorted(key for key, count in counts.items() if count > 1)
        raise ValueError(
            f"{len(twins)} name(s) in {str(directory / 'images')!r} belong "
            f"to two images, e.g. {', '.join(twins[:_SHOWN])}. Masks and "
            "boxes are matched by name: rename one of each pair."
        )
    sources = {}
    if csv_path.is_file():
        relative = {
            _key(path.parent.name, path.name): key for key, path, _ in files
        }
        boxes = read_box_csv(csv_path, relative)
        sources.update((key, ("boxes", b)) for key, b in boxes.items())
    if voc_root.is_dir():
        sources.update(_matched(voc_root, keys, "voc"))
    if mask_root.is_dir():
        sources.update(_matched(mask_root, keys, "mask"))  # Masks win.
    missing = sorted(set(keys) - sources.keys())
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) have no mask or boxes in "
            f"{str(directory)!r}, e.g. {', '.join(missing[:_SHOWN])}. Add "
            f"{MASKS}/<class>/<name>.png, {ANNOTATIONS}/<class>/<name>.xml "
            f"or {BOX_CSV} rows for each image (an empty one for an image "
            "without foreground), or remove them all to load without masks."
        )
    return sources


def _matched(root, keys, kind):
    found = {}
    for class_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            if kind == "voc" and path.suffix.lower() != ".xml":
                raise ValueError(
                    f"Unsupported file {str(path)!r}: annotations must be "
                    "Pascal VOC .xml files. Convert it or move it out of "
                    "the data folder."
                )
            found[_key(class_folder.name, path.stem)] = (kind, path)
    orphans = sorted(found.keys() - set(keys))
    if orphans:
        raise ValueError(
            f"{len(orphans)} {_NOUNS[kind]}(s) in {str(root)!r} have no image, "
            f"e.g. {', '.join(orphans[:_SHOWN])}. Remove them or add "
            "images/<class>/<name>.<ext> for each."
        )
    return found


def foreground_mask(source, decoded, image_path, *, size=None, labels=None):
    """The ``bool`` foreground mask of one image from its source (with
    ``labels``, the `Folder.mask_labels`: its ``uint8`` label map).

    Args:
        source: The image's entry in `Folder.foreground`.
        decoded: The image's `DecodedImage` (for its original size).
        image_path: The image file, for messages.
        size: ``(height, width)`` of the mask, or None for the image's.
        labels: `Folder.mask_labels`, or None.

    Raises:
        ValueError: If a mask's size differs from its image's, or the boxes
            are bad (see `boxes_to_mask` and `read_voc`).
    """
    original = tuple(decoded.original_size)
    kind, value = source
    if kind == "mask":
        if labels is None:
            mask = read_mask(value)
        else:
            mask = read_label_mask(value, len(labels) + 1)
        if mask.shape != original:
            raise ValueError(
                f"Mask {str(value)!r} is {_hw(mask.shape)} but its image "
                f"{str(image_path)!r} is {_hw(original)}. Save the mask at "
                "the image's size."
            )
        return mask if size is None else resize_mask(mask, size)
    boxes = read_voc(value) if kind == "voc" else value
    return boxes_to_mask(boxes, original, size=size)


def _hw(shape):
    return f"{shape[0]}x{shape[1]}"
