"""Decoding records into tensors: resizing, colour order, and bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from harness import BadImageError, Record
from harness.data.loading import load_images, resize_rgb


def _write(path, rgb: np.ndarray) -> str:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return str(path)


def test_arrays_are_resized_to_n3hw_uint8():
    red = np.zeros((8, 4, 3), np.uint8)
    red[..., 0] = 200
    loaded = load_images([Record(red, 0, 0), Record(red[:4], 1, 1)], (16, 8))
    assert loaded.images.shape == (2, 3, 16, 8) and loaded.images.dtype == torch.uint8
    assert loaded.keep == [0, 1] and loaded.bad == []
    assert loaded.sizes == [(8, 4), (4, 4)]
    assert torch.all(loaded.images[:, 0] == 200) and torch.all(loaded.images[:, 1:] == 0)


def test_shrinking_averages_instead_of_aliasing():
    checker = np.zeros((64, 32, 3), np.uint8)
    checker[::2, ::2] = 255
    checker[1::2, 1::2] = 255  # one-pixel checkerboard: point sampling would give 0 or 255
    small = resize_rgb(checker, (32, 16))
    assert small.shape == (32, 16, 3)
    assert np.all(np.abs(small.astype(int) - 128) <= 1)


def test_each_axis_gets_its_own_filter():
    stripes = np.zeros((40, 10, 3), np.uint8)
    stripes[::2] = 255  # horizontal one-pixel stripes, shrunk in height
    out = resize_rgb(stripes, (20, 20))  # ... and enlarged in width
    assert out.shape == (20, 20, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 1)


def test_files_decode_as_rgb(tmp_path):
    rgb = np.zeros((20, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 120, 240
    png = _write(tmp_path / "a.png", rgb)
    bmp = _write(tmp_path / "b.bmp", rgb[:10])
    loaded = load_images([Record(png, 0, 0), Record(bmp, 1, 0)], (20, 10))
    assert loaded.images[0, :, 0, 0].tolist() == [10, 120, 240]
    assert loaded.sizes == [(20, 10), (10, 10)]
    assert torch.equal(loaded.images[0], torch.from_numpy(rgb).permute(2, 0, 1))


def _bad_files(tmp_path):
    good = _write(tmp_path / "good.jpg", np.full((64, 32, 3), 90, np.uint8))
    data = (tmp_path / "good.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    return good, str(truncated), str(text)


def test_truncated_jpeg_raises_naming_the_file(tmp_path):
    good, truncated, _ = _bad_files(tmp_path)
    with pytest.raises(BadImageError, match=f"cannot decode image {truncated}: (?i:.*truncated)"):
        load_images([Record(good, 0, 0), Record(truncated, 1, 0)], (32, 16))


def test_non_image_file_raises_naming_the_file(tmp_path):
    _, _, text = _bad_files(tmp_path)
    with pytest.raises(BadImageError, match=f"cannot decode image {text}: not an image file"):
        load_images([Record(text, 0, 0)], (32, 16))


def test_missing_file_raises(tmp_path):
    with pytest.raises(BadImageError, match="gone.jpg does not exist"):
        load_images([Record(str(tmp_path / "gone.jpg"), 0, 0)], (32, 16))


def _png_header(path, width: int, height: int) -> str:
    """A PNG that claims ``width`` x ``height`` pixels in a few bytes: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return str(path)


@pytest.mark.parametrize("side", [60000, 10000])  # above twice PIL's limit; between 1x and 2x
def test_a_decompression_bomb_is_refused_naming_the_file(tmp_path, side):
    bomb = _png_header(tmp_path / "bomb.png", side, side)
    with pytest.raises(BadImageError, match=f"cannot decode image {bomb}: .*decompression bomb"):
        load_images([Record(bomb, 0, 0)], (32, 16))
    good, _, _ = _bad_files(tmp_path)
    loaded = load_images([Record(bomb, 0, 0), Record(good, 1, 0)], (32, 16), skip_bad=True)
    assert loaded.keep == [1] and loaded.bad == [bomb]


def test_skip_bad_counts_and_keeps_the_rest(tmp_path):
    good, truncated, text = _bad_files(tmp_path)
    array = np.zeros((8, 4, 3), np.uint8)
    records = [Record(truncated, 0, 0), Record(good, 1, 0), Record(array, 2, 1), Record(text, 3, 1)]
    loaded = load_images(records, (32, 16), skip_bad=True)
    assert loaded.keep == [1, 2]
    assert loaded.bad == [truncated, text]
    assert loaded.images.shape == (2, 3, 32, 16)
    assert abs(int(loaded.images[0, 0, 16, 8]) - 90) <= 2 and int(loaded.images[1].max()) == 0


def test_worker_processes_give_the_same_tensor(tmp_path):
    rng = np.random.default_rng(0)
    records = [
        Record(_write(tmp_path / f"{i}.png", rng.integers(0, 255, (30, 14, 3), np.uint8)), i, 0)
        for i in range(5)
    ]
    inline = load_images(records, (32, 16), workers=0)
    pooled = load_images(records, (32, 16), workers=1)
    assert torch.equal(inline.images, pooled.images)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(BadImageError, match="bad.png"):
        load_images([*records, Record(str(bad), 9, 0)], (32, 16), workers=1)


def test_wrong_arrays_are_refused():
    with pytest.raises(BadImageError, match="HxWx3 uint8"):
        load_images([Record(np.zeros((8, 4), np.uint8), 0, 0)], (8, 4))


def test_empty_record_list():
    loaded = load_images([], (32, 16))
    assert loaded.images.shape == (0, 3, 32, 16) and loaded.keep == []
