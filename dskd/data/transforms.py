"""Image/mask loading and ImageNet normalisation shared by every data set.

All loaders return ``torch.float32`` tensors:

* images: ``(3, H, W)`` in ``[0, 1]`` (:func:`load_image`), ImageNet-normalised by
  :func:`normalize` before they reach a model;
* masks: ``(1, H, W)`` with values in ``{0., 1.}`` (:func:`load_mask`).
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch
from PIL import Image

from .errors import DatasetError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "denormalize",
    "to_tensor01",
    "to_normalized_tensor",
    "load_image",
    "load_mask",
    "load_image_and_mask",
    "image_size_of",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Channel means/stds of ImageNet (RGB), used by the pre-trained ResNet18 teacher.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _stats_like(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if img.dim() not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"expected an image of shape (3, H, W) or (B, 3, H, W), got {tuple(img.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return mean, std


def normalize(img01: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` RGB image(s) ``(3,H,W)`` or ``(B,3,H,W)`` -> ImageNet-normalised."""
    mean, std = _stats_like(img01)
    return (img01 - mean) / std


def denormalize(img: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, clamped to ``[0, 1]`` (for display)."""
    mean, std = _stats_like(img)
    return (img * std + mean).clamp(0.0, 1.0)


_MEAN_NP = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
_STD_NP = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)

# The per-item conversions below are done in numpy on purpose: torch's intra-op
# threading makes small element-wise ops slow on busy few-core machines (Colab, CI),
# and data loading in the main process would pay for it on every item.


def _chw01(arr: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 or float array -> contiguous ``(3, H, W)`` float32 in [0, 1]."""
    if arr.dtype == np.uint8:
        a = arr.astype(np.float32) * np.float32(1.0 / 255.0)
    else:
        a = np.clip(arr.astype(np.float32), 0.0, 1.0)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def to_tensor01(arr: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 or float array in [0, 1] -> ``(3, H, W)`` float32 tensor in [0, 1]."""
    return torch.from_numpy(_chw01(arr))


def to_normalized_tensor(arr: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 or float array in [0, 1] -> ImageNet-normalised ``(3, H, W)`` tensor.

    Same result as ``normalize(to_tensor01(arr))``.
    """
    return torch.from_numpy((_chw01(arr) - _MEAN_NP) / _STD_NP)


def _open(path: PathLike) -> Image.Image:
    """Open and fully decode an image, turning every failure into a DatasetError."""
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError as e:
        raise DatasetError(f"image file not found: {path}") from e
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DatasetError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    return im


def image_size_of(path: PathLike) -> tuple[int, int]:
    """(width, height) of an image file without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError as e:
        raise DatasetError(f"image file not found: {path}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read image {path}: {type(e).__name__}: {e}") from e


def _check_size(image_size: int) -> int:
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return int(image_size)


def _image_array(im: Image.Image, image_size: int) -> np.ndarray:
    im = im.convert("RGB")  # grey (L), palette, RGBA, 16-bit -> 3 channels
    if im.size != (image_size, image_size):
        # PIL's bilinear resize widens its kernel when shrinking, i.e. it antialiases.
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _image_to_tensor(im: Image.Image, image_size: int, normalized: bool = False) -> torch.Tensor:
    arr = _image_array(im, image_size)
    return to_normalized_tensor(arr) if normalized else to_tensor01(arr)


def _mask_to_tensor(im: Image.Image, image_size: int) -> torch.Tensor:
    if im.mode != "L":
        im = im.convert("L")  # "1", "P", "RGB", 16-bit ... -> 8-bit grey
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.NEAREST)
    m = np.asarray(im, dtype=np.uint8) > 127
    return torch.from_numpy(m.astype(np.float32)[None])


def load_image(path: PathLike, image_size: int) -> torch.Tensor:
    """Read an image file -> ``(3, image_size, image_size)`` float tensor in ``[0, 1]``.

    Grey images are repeated to 3 channels; resizing is bilinear with antialiasing.
    Raises :class:`DatasetError` (naming ``path``) if the file is missing or corrupt.
    """
    image_size = _check_size(image_size)
    return _image_to_tensor(_open(path), image_size)


def load_mask(path: PathLike, image_size: int) -> torch.Tensor:
    """Read a ground-truth mask -> ``(1, image_size, image_size)`` tensor with values in {0, 1}.

    Nearest-neighbour resize, then ``pixel > 127 -> 1``.
    """
    image_size = _check_size(image_size)
    return _mask_to_tensor(_open(path), image_size)


def load_image_and_mask(
    image_path: PathLike, mask_path: PathLike | None, image_size: int, *, normalized: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an image and its mask, checking that their original sizes agree.

    ``mask_path=None`` gives an all-zero mask (a normal image without a mask file).
    ``normalized=True`` returns the image ImageNet-normalised (as data set items are).
    Raises :class:`DatasetError` naming both paths and sizes if they differ.
    """
    image_size = _check_size(image_size)
    im = _open(image_path)
    if mask_path is None:
        return _image_to_tensor(im, image_size, normalized), torch.zeros(1, image_size, image_size)
    mk = _open(mask_path)
    if im.size != mk.size:
        raise DatasetError(
            f"image/mask size mismatch: image {image_path} is {im.size[0]}x{im.size[1]} (WxH) "
            f"but mask {mask_path} is {mk.size[0]}x{mk.size[1]}"
        )
    return _image_to_tensor(im, image_size, normalized), _mask_to_tensor(mk, image_size)
