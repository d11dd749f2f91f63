"""The web demo's uploads: one still image of a usable size is read upright in RGB; anything else is refused with
a message a visitor can act on (it names the file and what to upload instead)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from uploads import MAX_PIXELS, MIN_SIDE, UploadError, read_upload


def png_header_only(path, width, height):
    """A valid PNG signature and header declaring ``width`` x ``height`` with one tiny (wrong) data chunk: what
    a decompression bomb looks like before its pixels are decoded."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def test_still_images_are_read_upright_in_rgb(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    image = read_upload(tmp_path / "a.png")
    assert image.mode == "RGB" and image.size == (30, 20)
    np.testing.assert_array_equal(np.asarray(image), pixels[..., :3])
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): the image comes back upright, 20 x 30 -> 30 x 20
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels[..., :3]).save(tmp_path / "rotated.jpg", exif=exif)
    assert read_upload(tmp_path / "rotated.jpg").size == (20, 30)
    Image.fromarray(pixels[..., 0], "L").save(tmp_path / "grey.png")
    assert read_upload(tmp_path / "grey.png").mode == "RGB"
    # a one-frame GIF is a still image
    Image.fromarray(pixels[..., :3]).save(tmp_path / "still.gif")
    assert read_upload(tmp_path / "still.gif").size == (30, 20)


def refusal(path) -> str:
    with pytest.raises(UploadError) as caught:
        read_upload(path)
    message = str(caught.value)
    assert path.name in message and "Traceback" not in message
    return message


def test_text_and_other_files_are_refused_with_what_to_upload(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    assert "not an image" in refusal(tmp_path / "notes.txt") and "PNG, JPEG" in refusal(tmp_path / "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "not an image" in refusal(tmp_path / "empty.png")  # the extension does not make it one


def test_animated_images_are_refused(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert "animated image (3 frames)" in refusal(tmp_path / "moving.gif")
    frames[0].save(tmp_path / "moving.png", save_all=True, append_images=frames[1:])  # APNG
    assert "animated" in refusal(tmp_path / "moving.png")


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE - 1, 200), (200, MIN_SIDE - 1)])
def test_tiny_images_are_refused(tmp_path, size):
    Image.new("RGB", size).save(tmp_path / "tiny.png")
    assert f"only {size[0]} x {size[1]} pixels" in refusal(tmp_path / "tiny.png")


def test_smallest_and_largest_accepted_sizes(tmp_path):
    Image.new("RGB", (MIN_SIDE, MIN_SIDE)).save(tmp_path / "small.png")
    assert read_upload(tmp_path / "small.png").size == (MIN_SIDE, MIN_SIDE)
    Image.new("RGB", (MAX_PIXELS // 1024, 1024)).save(tmp_path / "wide.png")
    assert read_upload(tmp_path / "wide.png").size == (MAX_PIXELS // 1024, 1024)


def test_huge_images_are_refused_before_their_pixels_are_decoded(tmp_path):
    Image.new("RGB", (MAX_PIXELS // 1024 + 1, 1024)).save(tmp_path / "huge.png")
    assert "too large" in refusal(tmp_path / "huge.png")
    # declared sizes past PIL's own decompression-bomb limit, and just past ours: refused from the header alone
    assert "too large" in refusal(png_header_only(tmp_path / "bomb.png", 100_000, 100_000))
    assert "too large" in refusal(png_header_only(tmp_path / "big.png", 5000, 5000))


def test_damaged_images_are_refused(tmp_path):
    Image.new("RGB", (64, 64), "red").save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    assert "damaged or incomplete" in refusal(tmp_path / "cut.jpg")
    (tmp_path / "cut_header.jpg").write_bytes(data[:40])
    assert "damaged or incomplete" in refusal(tmp_path / "cut_header.jpg")
