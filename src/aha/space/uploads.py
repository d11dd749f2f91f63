"""Files a visitor uploads to the web demo, read as one still RGB image or refused with a message a person can read.

    image = read_upload("/tmp/gradio/.../photo.jpg")     # PIL RGB image, upright (EXIF orientation applied)

Refused (:class:`UploadError`, a ``ValueError`` whose text is meant for the page): files PIL cannot read as an
image (text, PDF, ...), damaged or truncated images, animated images (GIF, PNG, WebP with more than one frame),
images smaller than :data:`MIN_SIDE` pixels on a side and images of more than :data:`MAX_PIXELS` pixels. The
size is read from the file's header before any pixel is decoded, so a small file that declares a huge image
(a decompression bomb) costs nothing.
"""

from __future__ import annotations

import os

from PIL import Image, ImageOps, UnidentifiedImageError


#: Smallest side accepted, in pixels: below it there is nothing to rank (the classifier would see a blur).
MIN_SIDE = 16
#: Most pixels accepted (a 12-megapixel phone photo, 4032 x 3024, fits): the map and its overlay are made at
#: the image's own size.
MAX_PIXELS = 4096 * 4096
#: What to upload instead, in every message.
FORMATS = "a PNG, JPEG, WebP or BMP photo"


class UploadError(ValueError):
    """An upload that is not one still image of a usable size; the message says why and what to upload."""


def read_upload(path: str | os.PathLike) -> Image.Image:
    """The image in the file at ``path``, as an upright RGB PIL image (EXIF orientation applied, palette,
    grayscale and alpha converted), or an :class:`UploadError` naming what is wrong with it."""
    name = os.path.basename(os.fspath(path))
    try:
        image = Image.open(path)  # reads the header only
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        if isinstance(error, UnidentifiedImageError):
            raise UploadError(f"{name} is not an image this demo can read: upload {FORMATS}.") from None
        raise UploadError(f"{name} is far too large an image: upload one of at most {MAX_PIXELS:,} pixels.") from None
    except OSError as error:  # a truncated header, or a file that vanished
        raise damaged(name, error) from None
    with image:
        width, height = image.size
        if getattr(image, "n_frames", 1) > 1:
            raise UploadError(
                f"{name} is an animated image ({image.n_frames} frames): upload a still image, e.g. one frame of it "
                f"saved as PNG."
            )
        if width * height > MAX_PIXELS:
            raise UploadError(
                f"{name} is {width} x {height} pixels, too large for this demo (at most {MAX_PIXELS:,} pixels, "
                f"e.g. 4096 x 4096): upload a smaller copy."
            )
        if min(width, height) < MIN_SIDE:
            raise UploadError(
                f"{name} is only {width} x {height} pixels: upload an image of at least {MIN_SIDE} x {MIN_SIDE} pixels."
            )
        try:
            return ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt pixel data
            raise damaged(name, error) from None


def damaged(name: str, error: Exception) -> UploadError:
    reason = getattr(error, "strerror", None) or str(error)
    return UploadError(f"{name} could not be read as an image; it may be damaged or incomplete ({reason}): upload {FORMATS}.")
