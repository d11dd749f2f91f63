"""Reading images: files, URLs, PIL images and numpy arrays become one upright, still, 8-bit RGB PIL image of a
checked size, or an :class:`ImageInputError` that names the image and what was expected. The pipeline,
``aha explain``, the web demo and the overlays all read their images here.

    image = read_image("~/photos/cat.png")                       # RGB PIL image, EXIF orientation applied
    image = read_image(array, max_pixels=50_000_000)              # a larger limit than MAX_PIXELS
    rgb = to_rgb(image)                                           # conversion only, no size limits (overlays)

**Size.** One limit everywhere: at most :data:`MAX_PIXELS` pixels (``max_pixels``; the pipeline's
``max_image_pixels``, ``aha explain --max_image_pixels``) and at least :data:`MIN_SIDE` pixels on each side
(``min_side``; ``min_image_side``, ``--min_image_side``). A file's size is read from its header before any pixel
is decoded, so a small file declaring a huge canvas (a decompression bomb) is refused at once, also when it
declares more than Pillow's own ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's warning and error become this module's
message). Pixel data that is truncated or damaged is refused with the file named: Pillow raises when it decodes
such a file as long as ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False, its default, which nothing in this
package changes.

**Pixel values**, converted by the image's own range:

- 8-bit PIL modes (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``LA``, ``PA``, ``CMYK``, ``YCbCr``, ...) go through
  Pillow's ``convert("RGB")``: grayscale is repeated over the channels, palettes are looked up, alpha is dropped.
- 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``; 16-bit grey PNGs open so) and ``uint16`` arrays are
  divided by 65535 (rounded to 0..255), never clipped at 255.
- Float images (mode ``F``, float16/32/64 arrays) must lie in [0, 1] (1 is white); other ranges are refused with
  the range found, NaN and infinities are refused.
- 32-bit integer images (mode ``I``) and arrays of other integer types (int32, int64, ...) have no fixed range and
  are refused with the mode or dtype named: convert them to uint8 (0..255), uint16 or float in [0, 1] first.
- Arrays are (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (the fourth channel is alpha and dropped); uint8 is
  taken as is.

**Frames.** Animated or multi-page files (GIF, PNG, WebP, TIFF with more than one frame) are refused: which
frame to explain is the caller's choice, so the message asks for that frame as a still image. An MPO file (a JPEG
carrying further pictures: a stereo view, an HDR gain map, as many phone cameras write) is read as its primary
picture, the one every viewer shows.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


#: Most pixels read (a 12-megapixel phone photo, 4032 x 3024, fits; the map and its overlay are made at the
#: image's own size, so memory grows with it).
MAX_PIXELS = 4096 * 4096
#: Smallest side read, in pixels: below it there is nothing to rank (a 1 x 1 image has a single pixel).
MIN_SIDE = 16

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError)  # what Pillow raises on truncated or corrupt data
#: the raster formats files are read in by default: Pillow never tries its other readers (EPS and PDF run
#: Ghostscript, for instance) on an input
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG includes MPO (Pillow opens those as JPEG)
#: how every message describes the images expected
EXPECTED = "a PNG, JPEG, WebP, BMP, GIF or TIFF image file"


class ImageInputError(ValueError):
    """An input that is not one still image of a usable size and range; the message names it and says why."""


def check_limit(name: str, value) -> None:
    """A size limit (``max_image_pixels``, ``min_image_side``) or count is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def read_image(
    image,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    formats: tuple[str, ...] = FORMATS,
    timeout: float | None = None,
    name: str | None = None,
) -> Image.Image:
    """One image as an upright 8-bit RGB PIL image, its size and pixel values checked (see the module docstring).

    Args:
        image: a file path (``~`` expanded), an ``http(s)://`` URL, a PIL image or a numpy array.
        max_pixels: most pixels (width x height) accepted.
        min_side: smallest width and height accepted.
        formats: Pillow format names a file may have (e.g. ``("PNG", "JPEG")``): Pillow does not even try the
            others. Default: :data:`FORMATS`, the common raster formats.
        timeout: seconds to wait for a URL.
        name: how messages name the image (default: its path or URL, "the PIL image", "the array").
    Raises:
        ImageInputError: naming the image and what was expected.
    """
    check_limit("max_image_pixels", max_pixels)
    check_limit("min_image_side", min_side)
    if isinstance(image, np.ndarray):
        name = name or "the array"
        check_size(name, *_array_size(image, name), max_pixels, min_side)
        return to_rgb(image, name)
    if isinstance(image, Image.Image):
        return _still_rgb(image, name or "the PIL image", max_pixels, min_side)
    if not isinstance(image, (str, os.PathLike)):
        raise ImageInputError(
            f"an image must be a file path, a URL, a PIL image or a numpy array, got {type(image).__name__}"
        )
    source, name = _source(image, timeout, name)
    with warnings.catch_warnings():
        # past Pillow's own limit: its warning becomes our message, unless the caller allows more than Pillow
        warnings.simplefilter(
            "error" if max_pixels <= (Image.MAX_IMAGE_PIXELS or max_pixels) else "ignore",
            Image.DecompressionBombWarning,
        )
        try:
            opened = Image.open(source, formats=formats)  # reads the header only
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageInputError(
                f"{name} is too large: its header declares more than {Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's "
                f"decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS); the limit here is {max_pixels:,} pixels "
                "(max_image_pixels)"
            ) from None
        except UnidentifiedImageError:
            expected = EXPECTED if formats == FORMATS else f"a {', '.join(formats)} image"
            raise ImageInputError(f"{name} is not an image file Pillow can identify: expected {expected}") from None
        except _DAMAGED as error:  # a truncated header
            raise damaged(name, error) from None
    with opened:
        return _still_rgb(opened, name, max_pixels, min_side)


def _source(image, timeout, name):
    """(what Image.open reads, the name in messages) of a path or URL."""
    text = os.fspath(image)
    if isinstance(text, str) and text.startswith(("http://", "https://")):
        import httpx  # as transformers' load_image fetches images

        try:
            response = httpx.get(text, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise ImageInputError(f"could not fetch the image at {text}: {error}") from None
        return BytesIO(response.content), name or text
    path = os.path.expanduser(text)
    shown = name or os.fsdecode(path)
    if not os.path.exists(path):
        raise ImageInputError(f"no such image file: {shown}")
    if os.path.isdir(path):
        raise ImageInputError(f"{shown} is a folder, not an image file: expected {EXPECTED}")
    return path, shown


def _still_rgb(image: Image.Image, name: str, max_pixels: int, min_side: int) -> Image.Image:
    """An opened (maybe not yet decoded) PIL image -> checked, decoded, upright RGB."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise ImageInputError(
            f"{name} is an animated image ({frames} frames): expected a still image, e.g. the frame to explain "
            "saved as PNG"
        )
    check_size(name, image.height, image.width, max_pixels, min_side)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except _DAMAGED as error:
        raise damaged(name, error) from None
    return to_rgb(image, name)


def check_size(name: str, height: int, width: int, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> None:
    """Refuse an image of more than ``max_pixels`` pixels or with a side shorter than ``min_side``."""
    if width * height > max_pixels:
        raise ImageInputError(
            f"{name} is {width} x {height} pixels, too large: at most {max_pixels:,} pixels are read "
            "(max_image_pixels)"
        )
    if min(width, height) < min_side:
        raise ImageInputError(
            f"{name} is only {width} x {height} pixels: expected at least {min_side} x {min_side} pixels "
            "(min_image_side)"
        )


def damaged(name: str, error: Exception) -> ImageInputError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return ImageInputError(f"{name} could not be decoded; it may be damaged or incomplete ({reason})")


def _array_size(array: np.ndarray, name: str) -> tuple[int, int]:
    """(H, W) of an image array, its layout checked."""
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4)):
        return array.shape[0], array.shape[1]
    raise ImageInputError(f"{name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {array.shape}")


def to_rgb(image, name: str = "the image") -> Image.Image:
    """A PIL image or a numpy array -> an 8-bit RGB PIL image of the same size, by the rules of the module
    docstring (no size limits; EXIF orientation is not applied). Raises :class:`ImageInputError` naming the mode
    or dtype it cannot convert."""
    if isinstance(image, Image.Image):
        if image.mode == "RGB":
            return image
        if image.mode in _SIXTEEN_BIT or image.mode == "F":
            return _array_to_rgb(np.asarray(image), f"{name} (mode {image.mode})")
        if image.mode == "I":
            raise ImageInputError(
                f"{name} is a 32-bit integer image (mode I), which has no fixed range: expected 8-bit (L, RGB), "
                "16-bit (I;16) or float in [0, 1] (F) pixels"
            )
        try:
            return image.convert("RGB")
        except ValueError as error:
            raise ImageInputError(
                f"{name} has mode {image.mode}, which Pillow cannot convert to RGB ({error})"
            ) from None
    array = np.asarray(image)
    _array_size(array, name)
    return _array_to_rgb(array, name)


def _array_to_rgb(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]  # alpha dropped, as Pillow's convert("RGB")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2:  # uint16, either byte order
        pixels = np.rint(array.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageInputError(f"{name} holds NaN or infinite values: expected float pixels in [0, 1]")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise ImageInputError(
                f"{name} has float pixels in [{low:.4g}, {high:.4g}]: expected float pixels in [0, 1]"
            )
        pixels = np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    else:
        raise ImageInputError(
            f"{name} has {array.dtype} pixels, which have no fixed range here: expected uint8 (0..255), uint16 "
            "(0..65535) or float in [0, 1]"
        )
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


__all__ = [
    "EXPECTED",
    "FORMATS",
    "ImageInputError",
    "MAX_PIXELS",
    "MIN_SIDE",
    "check_limit",
    "check_size",
    "read_image",
    "to_rgb",
]
