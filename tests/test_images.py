"""Reading images (aha.imaging.images), as the pipeline, the overlays and the web demo read them: one test per cause of
issue 19's image inputs, each through the entry points it reaches, each asserting that the message names the
image and the mode, range or limit."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import SPACE
from PIL import Image, ImageFile
from test_pipeline import pipe, random_image, saved  # noqa: F401 (fixtures)
from test_space_uploads import png_header_only
from transformers import pipeline
from uploads import UploadError, read_upload

from aha.data.collate import ImageClassificationCollator
from aha.imaging.images import MAX_PIXELS, MIN_SIDE, ImageInputError, read_image, to_rgb
from aha.imaging.visualization import grid, overlay


def refused(read, *args, **kwargs) -> str:
    with pytest.raises(ImageInputError) as caught:
        read(*args, **kwargs)
    return str(caught.value)


def test_16_bit_and_float_images_are_read_by_their_own_range(pipe, tmp_path):
    """A 16-bit grey PNG is explained as the 8-bit image it shows (not as white, as convert("RGB") made it), and a
    float one in [0, 1] likewise; overlays draw them the same way."""
    deep = np.random.default_rng(0).integers(0, 65536, (40, 36), dtype=np.uint16)
    shallow = np.rint(deep / 257).astype(np.uint8)  # 65535 -> 255
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    Image.fromarray(shallow).save(tmp_path / "shallow.png")
    expected = pipe(str(tmp_path / "shallow.png"))["attribution"]
    np.testing.assert_array_equal(pipe(str(tmp_path / "deep.png"))["attribution"], expected)
    np.testing.assert_array_equal(pipe(deep)["attribution"], expected)  # a uint16 array
    big_endian = Image.frombytes("I;16B", (36, 40), deep.astype(">u2").tobytes())
    np.testing.assert_array_equal(pipe(big_endian)["attribution"], expected)
    np.testing.assert_array_equal(pipe(Image.fromarray(deep / 65535.0).convert("F"))["attribution"], expected)
    np.testing.assert_array_equal(pipe(deep / 65535.0)["attribution"], expected)  # a float array in [0, 1]
    attribution = np.random.default_rng(1).random((40, 36))
    assert overlay(Image.open(tmp_path / "deep.png"), attribution) == overlay(shallow, attribution)
    np.testing.assert_array_equal(np.asarray(read_upload(tmp_path / "deep.png"))[..., 0], shallow)  # the web demo
    assert grid([[Image.open(tmp_path / "deep.png")]], ["16-bit"]) == grid([[Image.fromarray(shallow)]], ["16-bit"])
    collate = ImageClassificationCollator(pipe.image_processor, "image", "label", num_labels=5)  # training batches
    torch.testing.assert_close(
        collate([{"image": Image.open(tmp_path / "deep.png"), "label": 0}])["pixel_values"],
        collate([{"image": Image.fromarray(shallow), "label": 0}])["pixel_values"],
    )


@pytest.mark.parametrize(
    "image, named",
    [
        (Image.fromarray(np.full((20, 20), 70000, dtype=np.int32)), "mode I"),
        (Image.fromarray(np.full((20, 20), 2.0, dtype=np.float32)), "in [2, 2]"),
        (np.full((20, 20, 3), 200, dtype=np.int64), "int64 pixels"),
        (np.full((20, 20), -0.5), "in [-0.5, -0.5]"),
    ],
)
def test_images_without_a_known_range_are_refused_with_their_mode_or_dtype(pipe, image, named):
    message = refused(pipe, image)
    assert named in message and "expected" in message
    assert named in refused(overlay, image, np.zeros((20, 20)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_pixels_are_refused_not_cast(pipe, bad):
    pixels = np.full((20, 20, 3), 0.5)
    pixels[3, 4, 1] = bad
    assert "NaN or infinite" in refused(pipe, pixels)
    assert "NaN or infinite" in refused(overlay, pixels, np.zeros((20, 20)))
    assert "mode F" in refused(pipe, Image.fromarray(pixels[..., 1].astype(np.float32)))


def test_animated_images_are_refused_and_a_multi_picture_jpeg_is_its_primary_picture(pipe, tmp_path):
    frames = [random_image(24, 24, seed=seed) for seed in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "moving.webp", save_all=True, append_images=frames[1:], lossless=True)
    for name in ("moving.gif", "moving.webp"):
        message = refused(pipe, str(tmp_path / name))
        assert f"{tmp_path / name} is an animated image (3 frames)" in message and "still image" in message
    frames[0].save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=frames[1:2])
    assert Image.open(tmp_path / "phone.jpg").format == "MPO" and Image.open(tmp_path / "phone.jpg").n_frames == 2
    primary = np.asarray(Image.open(tmp_path / "phone.jpg").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "phone.jpg")), primary)
    np.testing.assert_array_equal(np.asarray(read_upload(tmp_path / "phone.jpg")), primary)


def test_one_size_limit_named_in_its_message_checked_before_decoding_and_overridable(pipe, saved, tmp_path):
    # declared sizes past Pillow's decompression-bomb error (10^10) and warning (10^8), and past ours only: each
    # header-only file is refused from its header, with our limit named
    for side in (100_000, 10_000, 5_000):
        path = png_header_only(tmp_path / f"bomb{side}.png", side, side)
        message = refused(pipe, str(path))
        assert f"{path} is " in message and "too large" in message and f"{MAX_PIXELS:,} pixels" in message
        assert "max_image_pixels" in message
        assert "too large" in str(pytest.raises(UploadError, read_upload, path).value)
    random_image(1, 1).save(tmp_path / "dot.png")
    message = refused(pipe, str(tmp_path / "dot.png"))
    assert f"{tmp_path / 'dot.png'} is only 1 x 1 pixels" in message and f"at least {MIN_SIDE} x {MIN_SIDE}" in message
    assert "min_image_side" in message
    # overridden per call or for the pipeline, both ways; one image of 40 x 52 = 2080 pixels
    image = random_image(40, 52)
    assert "at most 2,000 pixels" in refused(pipe, image, max_image_pixels=2000)
    assert "at least 41 x 41" in refused(pipe, image, min_image_side=41)
    assert pipe(Image.open(tmp_path / "dot.png"), min_image_side=1)["attribution"].shape == (1, 1)
    small = pipeline("image-attribution", model=str(saved), device="cpu", max_image_pixels=2000)
    assert "at most 2,000 pixels" in refused(small, image)
    assert small(image, max_image_pixels=2080)["attribution"].shape == (40, 52)
    with pytest.raises(ValueError, match="max_image_pixels must be an integer >= 1, got 0"):
        pipe(image, max_image_pixels=0)


def test_truncated_pixel_data_is_refused_with_the_file_named(pipe, tmp_path):
    random_image(64, 64).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    message = refused(pipe, str(tmp_path / "cut.png"))
    assert f"{tmp_path / 'cut.png'} could not be decoded; it may be damaged or incomplete" in message
    random_image(64, 64).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert "damaged or incomplete" in refused(pipe, str(tmp_path / "cut.jpg"))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing imported by the package or its Space turned it on


def test_the_package_and_the_space_leave_truncated_loading_off():
    code = (
        f"import sys; sys.path.insert(0, {str(SPACE)!r})\n"
        "import aha, aha.explain, uploads, comparison, demo_explainer, gradio\n"
        "from PIL import ImageFile\nprint(ImageFile.LOAD_TRUNCATED_IMAGES)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.stdout.strip() == "False", run.stderr


def test_bad_sources_are_named_with_what_was_expected(pipe, tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("a text file, not a picture\n")
    message = refused(pipe, str(tmp_path / "notes.png"))
    assert f"{tmp_path / 'notes.png'} is not an image file" in message and "expected a PNG, JPEG" in message
    # a missing local file is not reported as a bad URL or base64 string
    assert refused(pipe, str(tmp_path / "missing.png")) == f"no such image file: {tmp_path / 'missing.png'}"
    assert "is a folder, not an image file" in refused(pipe, str(tmp_path))
    assert "a file path, a URL, a PIL image or a numpy array, got int" in refused(pipe, 3)
    # ~ is the user's home
    monkeypatch.setenv("HOME", str(tmp_path))
    random_image(30, 30).save(tmp_path / "cat.png")
    np.testing.assert_array_equal(pipe("~/cat.png")["attribution"], pipe(str(tmp_path / "cat.png"))["attribution"])
    assert refused(pipe, "~/dog.png") == f"no such image file: {tmp_path / 'dog.png'}"


def test_the_space_opens_only_the_formats_it_names(tmp_path):
    random_image(30, 30).save(tmp_path / "scan.tif")
    random_image(30, 30).save(tmp_path / "icon.ico")
    assert to_rgb(read_image(tmp_path / "scan.tif")).size == (30, 30)  # the library reads TIFF, the Space does not
    for name in ("scan.tif", "icon.ico"):
        with pytest.raises(UploadError) as caught:
            read_upload(tmp_path / name)
        assert str(caught.value).startswith(f"{name} is not an image file") and "PNG, JPEG, WEBP, BMP, GIF" in str(
            caught.value
        )


def test_files_are_read_only_in_the_common_raster_formats(tmp_path):
    """Pillow's other readers never run on an input (EPS and PDF start Ghostscript): an image in a format outside
    aha.imaging.images.FORMATS is refused naming the formats expected, unless the caller names it."""
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "image.pcx")
    message = refused(read_image, str(tmp_path / "image.pcx"))
    assert "image.pcx" in message and "PNG, JPEG, WebP, BMP, GIF or TIFF" in message
    assert read_image(str(tmp_path / "image.pcx"), formats=("PCX",)).size == (32, 32)
    (tmp_path / "drawing.eps").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n")
    assert "drawing.eps" in refused(read_image, str(tmp_path / "drawing.eps"))
