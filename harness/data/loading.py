"""Decode dataset records into one uint8 tensor, with errors that name the file.

Why one tensor: datasets here fit in memory at re-id sizes, so decoding once
(in DataLoader worker processes) and indexing tensors afterwards keeps data
loading out of the training loop. Resizing is antialiased (area averaging
when shrinking, bicubic when enlarging, per axis), so a dataset's native
resolution does not leak aliasing into the HR images the protocol starts from.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from harness.components import Record
from harness.errors import BadImageError


@dataclass
class LoadedImages:
    """``images[j]`` is record ``keep[j]``; ``bad`` lists files that were skipped.

    ``sizes[j]`` is the (H, W) the image had before resizing (native LR data
    such as CAVIAR reports its own resolution this way).
    """

    images: torch.Tensor  # uint8, N x 3 x H x W, RGB
    keep: list[int]
    bad: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` (H, W): area to shrink, cubic to enlarge.

    Each axis gets the filter its own direction needs, so a tall narrow crop
    that is shrunk in height and enlarged in width is neither aliased nor blurred.
    """
    h, w = image.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return np.ascontiguousarray(image)

    def interp(src: int, dst: int) -> int:
        return cv2.INTER_AREA if dst < src else cv2.INTER_CUBIC

    if interp(h, th) == interp(w, tw):
        return cv2.resize(image, (tw, th), interpolation=interp(h, th))
    step = cv2.resize(image, (w, th), interpolation=interp(h, th))
    return cv2.resize(step, (tw, th), interpolation=interp(w, tw))


def decode_file(path: str) -> np.ndarray:
    """Decode a file to HxWx3 uint8 RGB; raise ``BadImageError`` naming it on any failure.

    PIL, not cv2: cv2 fills a truncated JPEG with grey and carries on.
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: a person crop that big
            # is a decompression bomb all the same (gigabytes of RAM), so it is refused too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                rgb = im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(
            f"cannot decode image {path}: refused as a decompression bomb ({exc})"
        ) from None
    except FileNotFoundError:
        raise BadImageError(f"image file {path} does not exist") from None
    except UnidentifiedImageError:
        raise BadImageError(f"cannot decode image {path}: not an image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"cannot decode image {path}: {exc}") from None
    array = np.array(rgb, dtype=np.uint8)  # a writable copy, owned by us
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise BadImageError(f"cannot decode image {path}: empty image of shape {array.shape}")
    return array


def _as_rgb(image: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise BadImageError(
            f"record {index}: in-memory images must be HxWx3 uint8 arrays, "
            f"got shape {array.shape} dtype {array.dtype}"
        )
    return array


class _Decode(Dataset):
    """Decodes in worker processes; failures come back as messages, not exceptions,
    so that ``skip_bad`` can count them and the main process raises with the file name."""

    def __init__(self, paths: Sequence[str], size: tuple[int, int]):
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            array = decode_file(self.paths[i])
        except BadImageError as exc:
            return i, None, str(exc), (0, 0)
        native = (int(array.shape[0]), int(array.shape[1]))
        return i, torch.from_numpy(resize_rgb(array, self.size)), None, native


def _collate(batch):
    return batch


def load_images(
    records: Sequence[Record],
    size: tuple[int, int],
    *,
    workers: int = 0,
    skip_bad: bool = False,
) -> LoadedImages:
    """Decode and resize every record to ``size`` (H, W) into one N x 3 x H x W tensor.

    File paths are decoded by a DataLoader with ``workers`` processes; arrays
    are resized in place of decoding. A corrupt or missing file raises
    :class:`~harness.BadImageError` naming it, unless ``skip_bad``, when it is
    left out (``keep`` lists the records kept, ``bad`` the files skipped).
    """
    h, w = int(size[0]), int(size[1])
    out = torch.empty((len(records), h, w, 3), dtype=torch.uint8)
    ok = np.zeros(len(records), dtype=bool)
    sizes: list[tuple[int, int]] = [(0, 0)] * len(records)
    bad: list[str] = []
    file_index: list[int] = []
    for i, record in enumerate(records):
        image = record.image
        if isinstance(image, (str, Path)):
            file_index.append(i)
            continue
        array = _as_rgb(image, i)
        out[i] = torch.from_numpy(resize_rgb(array, (h, w)))
        sizes[i] = (int(array.shape[0]), int(array.shape[1]))
        ok[i] = True
    if file_index:
        paths = [str(records[i].image) for i in file_index]
        loader = DataLoader(
            _Decode(paths, (h, w)),
            batch_size=64,
            shuffle=False,
            num_workers=max(0, int(workers)),
            collate_fn=_collate,
        )
        for batch in loader:
            for j, tensor, error, native in batch:
                i = file_index[j]
                if error is not None:
                    if not skip_bad:
                        raise BadImageError(error)
                    bad.append(paths[j])
                    continue
                out[i] = tensor
                sizes[i] = native
                ok[i] = True
    keep = [int(i) for i in np.flatnonzero(ok)]
    images = out[keep] if len(keep) < len(records) else out
    return LoadedImages(
        images=images.permute(0, 3, 1, 2).contiguous(),
        keep=keep,
        bad=bad,
        sizes=[sizes[i] for i in keep],
    )
