"""Files a visitor uploads to the web demo, read as one still RGB image or refused with a message a person can read.

    image = read_upload("/tmp/gradio/.../photo.jpg")     # PIL RGB image, upright (EXIF orientation applied)

Read by :func:`aha.imaging.images.read_image`, as the pipeline and ``aha explain`` read images (the same size limits,
:data:`MAX_PIXELS` and :data:`MIN_SIDE`, the same conversions), with one restriction more: only the formats
named in :data:`FORMATS` are opened (Pillow does not even try its other readers on an upload). Refused
(:class:`UploadError`, a ``ValueError`` whose text is meant for the page and names the file): other files (text,
PDF, TIFF, ...), damaged or truncated images, animated images, images smaller than :data:`MIN_SIDE` pixels on a
side and images of more than the limit (by default :data:`MAX_PIXELS`). The size is read from the file's header
before any pixel is decoded, so a small file that declares a huge image (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import os

from PIL import Image

from aha.imaging.images import MAX_PIXELS, MIN_SIDE, ImageInputError, read_image


#: Pillow's names of the formats the demo opens (an MPO file, a JPEG with more pictures, opens as JPEG)
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
#: What to upload instead, in every message.
FORMATS = "a PNG, JPEG, WebP, BMP or (still) GIF image"


class UploadError(ImageInputError):
    """An upload that is not one still image of a usable size; the message says why and what to upload."""


def read_upload(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image in the file at ``path``, as an upright RGB PIL image (EXIF orientation applied, palette,
    grayscale and alpha converted, 16-bit by its range), or an :class:`UploadError` naming what is wrong with it.

    Args:
        max_pixels: most pixels accepted (the web demo's ``--max_image_pixels``).
    """
    name = os.path.basename(os.fspath(path))
    try:
        return read_image(path, max_pixels, MIN_SIDE, formats=PIL_FORMATS, name=name)
    except ImageInputError as error:
        raise UploadError(f"{error}. Upload {FORMATS}.") from None


__all__ = ["FORMATS", "MAX_PIXELS", "MIN_SIDE", "PIL_FORMATS", "UploadError", "read_upload"]
