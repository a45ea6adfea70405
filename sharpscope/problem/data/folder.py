"""``folder:DIR``: one sub-folder per class of images; ``DIR/train`` and ``DIR/test`` if
present, else a seeded 80/20 split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .arrays import _as_tensors, _dir, _split_arrays

_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _read_image_folder(
    folder: Path, classes: list[str]
) -> tuple[list[np.ndarray], list[int], list[Path]]:
    from PIL import Image, UnidentifiedImageError

    images, labels, paths = [], [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in _IMAGE_EXTS)
        for p in files:
            try:
                with Image.open(p) as im:
                    images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"folder: cannot read image {p} ({exc})") from exc
            labels.append(label)
            paths.append(p)
    return images, labels, paths


def _stack_images(images: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    shape = images[0].shape
    for im, p in zip(images, paths, strict=True):
        if im.shape != shape:
            raise DataError(
                f"folder: image {p} is {im.shape[1]}x{im.shape[0]}, others are {shape[1]}x{shape[0]}; resize them to one size"
            )
    x = np.stack(images).astype(np.float32) / 255.0  # N, H, W, 3
    x = x.transpose(0, 3, 1, 2)
    if np.allclose(x[:, 0], x[:, 1]) and np.allclose(x[:, 1], x[:, 2]):
        x = x[:, :1]
    return x


def _class_dirs(folder: Path) -> list[str]:
    """Sorted class sub-folder names; hidden folders (``.ipynb_checkpoints``, ``.git``) are not classes."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _load_folder(arg: str) -> tuple[torch.Tensor, ...]:
    folder = _dir(arg, "folder")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        classes = _class_dirs(folder / "train")
        test_classes = _class_dirs(folder / "test")
        if not classes:
            raise DataError(f"folder: {folder}/train has no class sub-folders")
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise DataError(
                f"folder: {folder}/test has classes not in {folder}/train: {', '.join(extra)}"
            )
        tr_im, tr_y, tr_p = _read_image_folder(folder / "train", classes)
        te_im, te_y, te_p = _read_image_folder(folder / "test", test_classes)
        te_y = [classes.index(test_classes[i]) for i in te_y]
        if not tr_im:
            raise DataError(f"folder: no images found in {folder}/train")
        x = _stack_images(tr_im + te_im, tr_p + te_p)
        n = len(tr_im)
        return (
            *_as_tensors(x[:n], np.array(tr_y), x[n:], np.array(te_y, dtype=np.int64), str(folder)),
            len(classes),
        )
    classes = _class_dirs(folder)
    if not classes:
        raise DataError(f"folder: {folder} has no class sub-folders")
    images, labels, paths = _read_image_folder(folder, classes)
    if len(images) < 2:
        raise DataError(f"folder: found {len(images)} images in {folder}; need at least 2")
    x = _stack_images(images, paths)
    return (
        *_as_tensors(
            *_split_arrays(x, np.array(labels, dtype=np.int64), 0.2, seed=0), where=str(folder)
        ),
        len(classes),
    )
