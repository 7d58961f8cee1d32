"""Data sets for DSKD: the embedded synthetic one, MT Defects, MVTec AD, MVTec 3D-AD (RGB).

Every data set is a :class:`torch.utils.data.Dataset` whose items are dicts::

    {"image": FloatTensor (3, H, W), ImageNet-normalised,
     "mask": FloatTensor (1, H, W) in {0., 1.},
     "label": int (0 normal, 1 anomalous),
     "defect_type": str ("good" for normal),
     "path": str (file path or "synthetic://<category>/<split>/<index>")}

and which has ``.defect_types`` (sorted, without "good"), ``.image_size``, ``.name``,
``.split`` and ``labels()`` (no image is read). :func:`build_dataset` builds any of
them by name; real data lives under :func:`data_root` (``$DSKD_DATA`` or
``~/dskd_data``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from torch.utils.data import Dataset

from .download import download_and_extract
from .errors import DatasetError
from .magnetic_tile import MT_DEFECT_TYPES, MagneticTile
from .mvtec import (
    MVTEC3D_CATEGORIES,
    MVTEC_CATEGORIES,
    MVTec3DRGB,
    MVTecAD,
    download_mvtec,
)
from .synthetic import SYNTHETIC_CATEGORIES, SYNTHETIC_DEFECT_TYPES, SyntheticDefects
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, denormalize, load_image, load_image_and_mask, load_mask, normalize,
                         save_image)

__all__ = [
    "DatasetError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "denormalize",
    "load_image",
    "load_mask",
    "load_image_and_mask",
    "save_image",
    "SyntheticDefects",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_DEFECT_TYPES",
    "MagneticTile",
    "MT_DEFECT_TYPES",
    "MVTecAD",
    "MVTec3DRGB",
    "MVTEC_CATEGORIES",
    "MVTEC3D_CATEGORIES",
    "download_and_extract",
    "download_mvtec",
    "data_root",
    "find_magnetic_tile_root",
    "DATASETS",
    "DEFAULT_IMAGE_SIZE",
    "build_dataset",
]

#: Names accepted by :func:`build_dataset`.
DATASETS: tuple[str, ...] = ("synthetic", "mt-defects", "mvtec", "mvtec3d")
#: Image side used when ``image_size`` is not given (the paper's sizes for real data).
DEFAULT_IMAGE_SIZE: dict[str, int] = {"synthetic": 64, "mt-defects": 128, "mvtec": 256, "mvtec3d": 256}


def data_root() -> Path:
    """Folder holding the real data sets: ``$DSKD_DATA`` if set, else ``~/dskd_data``."""
    env = os.environ.get("DSKD_DATA")
    return Path(env).expanduser() if env else Path.home() / "dskd_data"


def find_magnetic_tile_root() -> Optional[Path]:
    """``data_root()/magnetic-tile`` if that folder exists, else ``None``."""
    root = data_root() / "magnetic-tile"
    return root if root.is_dir() else None


def build_dataset(
    name: str,
    split: str,
    *,
    category: Optional[str] = None,
    root: Optional[Union[str, "os.PathLike[str]"]] = None,
    image_size: Optional[int] = None,
    seed: int = 0,
    download: bool = False,
    **kwargs: Any,
) -> Dataset:
    """Build a data set by name (one of :data:`DATASETS`).

    * ``"synthetic"``: ``category`` in :data:`SYNTHETIC_CATEGORIES` (default "stripes");
      extra ``kwargs`` (``n_train``, ``n_test``, ``cache``) go to :class:`SyntheticDefects`.
    * ``"mt-defects"``: ``root`` defaults to ``data_root()/"magnetic-tile"``; ``seed`` picks the split.
    * ``"mvtec"``: ``category`` required; ``root`` defaults to ``data_root()/"mvtec_ad"``.
    * ``"mvtec3d"``: ``category`` required; ``root`` defaults to ``data_root()/"mvtec_3d"``.

    ``image_size=None`` uses :data:`DEFAULT_IMAGE_SIZE`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    size = int(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE[name]
    if name == "synthetic":
        return SyntheticDefects(category or "stripes", split, image_size=size, seed=seed, **kwargs)
    if name == "mt-defects":
        if root is None:
            root = data_root() / "magnetic-tile"
        return MagneticTile(root, split, image_size=size, seed=seed, **kwargs)
    if name == "mvtec":
        if category is None:
            raise ValueError(f"data set 'mvtec' needs category=, one of: {', '.join(MVTEC_CATEGORIES)}")
        root = data_root() / "mvtec_ad" if root is None else root
        return MVTecAD(root, category, split, image_size=size, download=download, **kwargs)
    if category is None:
        raise ValueError(f"data set 'mvtec3d' needs category=, one of: {', '.join(MVTEC3D_CATEGORIES)}")
    root = data_root() / "mvtec_3d" if root is None else root
    return MVTec3DRGB(root, category, split, image_size=size, download=download, **kwargs)
