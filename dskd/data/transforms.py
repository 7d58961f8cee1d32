"""Image/mask loading and ImageNet normalisation shared by every data set.

All loaders return ``torch.float32`` tensors:

* images: ``(3, H, W)`` in ``[0, 1]`` (:func:`load_image`), ImageNet-normalised by
  :func:`normalize` before they reach a model;
* masks: ``(1, H, W)`` with values in ``{0., 1.}`` (:func:`load_mask`).
"""
from __future__ import annotations

import os
import warnings
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
    "load_item",
    "save_image",
]

PathLike = Union[str, "os.PathLike[str]"]


class MaskValuesWarning(UserWarning):
    """A mask whose values are neither 0/1 nor 0/full scale, read as empty."""

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


#: full-scale value of Pillow's integer modes: 16-bit PNG/TIFF open as "I;16*" (or "I", 32-bit signed)
_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


def _bit_depth_scale(im: Image.Image) -> float | None:
    """The value that means "white" for an integer image with more than 8 bits, else ``None``.

    Pillow's own ``convert("RGB")`` of a 16-bit image clips every value above 255, which saturates almost
    all of a full-range image; such images are scaled by their bit depth instead. Mode "I" does not record
    the depth: 16-bit is assumed when a value exceeds 255 (8-bit data stored as "I" keeps 255).
    """
    if im.mode in _FULL_SCALE:
        return float(_FULL_SCALE[im.mode])
    if im.mode == "I":
        lo, hi = im.getextrema()
        return 65535.0 if hi > 255 else 255.0
    if im.mode == "F":
        return 1.0
    return None


def _image_array(im: Image.Image, image_size: int) -> np.ndarray:
    """``(size, size, 3)``: uint8 for 8-bit images, float32 in [0, 1] for deeper ones."""
    scale = _bit_depth_scale(im)
    if scale is not None:  # one grey channel of 16 (or 32) bits: resize in float, never clip
        grey = Image.fromarray(np.asarray(im, dtype=np.float32) / np.float32(scale), mode="F")
        if grey.size != (image_size, image_size):
            grey = grey.resize((image_size, image_size), Image.Resampling.BILINEAR)
        a = np.clip(np.asarray(grey, dtype=np.float32), 0.0, 1.0)
        return np.repeat(a[:, :, None], 3, axis=2)
    im = im.convert("RGB")  # grey (L), palette, RGBA, 48-bit RGB (Pillow keeps the high bytes) -> 3 x 8 bits
    if im.size != (image_size, image_size):
        # PIL's bilinear resize widens its kernel when shrinking, i.e. it antialiases.
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _image_to_tensor(im: Image.Image, image_size: int, normalized: bool = False) -> torch.Tensor:
    arr = _image_array(im, image_size)
    return to_normalized_tensor(arr) if normalized else to_tensor01(arr)


def _mask_to_tensor(im: Image.Image, image_size: int, path: PathLike = "") -> torch.Tensor:
    """A mask in {0, 1}: 0/1, 0/255 (8-bit) and 0/65535 (16-bit) masks are all accepted.

    Pixels at or above half the mask's full scale are defects; a mask whose values are all 0 or 1 is
    read as it is (a {0, 1} mask would otherwise be empty after an 8-bit threshold). A non-zero mask that
    this leaves empty (MT Defects has four, with values {0, 2}) is read as empty with a
    :class:`MaskValuesWarning` saying which values were found.
    """
    scale = _bit_depth_scale(im)
    if scale is None and im.mode not in ("L", "1"):
        im = im.convert("L")  # "P", "RGB", "LA" ... -> 8-bit grey
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.NEAREST)
    a = np.asarray(im)
    if a.dtype == bool:
        return torch.from_numpy(a.astype(np.float32)[None])
    full = scale if scale is not None else 255.0
    top = float(a.max()) if a.size else 0.0
    if top <= 1.0:
        m = a >= 1 if full != 1.0 else a >= 0.5
    else:
        m = a >= full / 2
        if not m.any():
            values = np.unique(a)
            shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
            warnings.warn(f"mask {path} holds the values {{{shown}}}: none reaches half of the {int(full)} full "
                          f"scale, so it is read as empty (no defect pixel); expected a mask of 0/1 or 0/255 "
                          f"(8-bit) or 0/65535 (16-bit)", MaskValuesWarning, stacklevel=3)
    return torch.from_numpy(m.astype(np.float32)[None])


def save_image(image: torch.Tensor, path: PathLike) -> str:
    """Write an ImageNet-normalised ``(3, H, W)`` image (a data set's item) as an 8-bit RGB file, the kind a
    camera writes: :func:`load_image` reads it back within 1/255 (rounding). Returns the path."""
    rgb = (denormalize(image.detach().cpu().float()).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(rgb).save(path)
    return str(path)


def load_image(path: PathLike, image_size: int) -> torch.Tensor:
    """Read an image file -> ``(3, image_size, image_size)`` float tensor in ``[0, 1]``.

    Grey images are repeated to 3 channels; resizing is bilinear with antialiasing. 16-bit images are
    scaled by their bit depth (65535 is white), not clipped to 8 bits.
    Raises :class:`DatasetError` (naming ``path``) if the file is missing or corrupt.
    """
    image_size = _check_size(image_size)
    return _image_to_tensor(_open(path), image_size)


def load_mask(path: PathLike, image_size: int) -> torch.Tensor:
    """Read a ground-truth mask -> ``(1, image_size, image_size)`` tensor with values in {0, 1}.

    Nearest-neighbour resize, then pixels at or above half the full scale (127.5 for 8-bit masks) are
    defects; masks holding only 0 and 1 are read as they are.
    """
    image_size = _check_size(image_size)
    return _mask_to_tensor(_open(path), image_size, path)


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
    return _image_to_tensor(im, image_size, normalized), _mask_to_tensor(mk, image_size, mask_path)


def load_item(image_path: PathLike, mask_path: PathLike | None, defect_type: str, image_size: int) -> dict:
    """One data set item (the dict every data set yields) from an image file and its mask (``None``: normal)."""
    image, mask = load_image_and_mask(image_path, mask_path, image_size, normalized=True)
    return {"image": image, "mask": mask, "label": 0 if defect_type == "good" else 1, "defect_type": defect_type,
            "path": str(image_path)}
