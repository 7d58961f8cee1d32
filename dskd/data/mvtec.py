"""MVTec AD and the RGB part of MVTec 3D-AD.

MVTec AD (Bergmann et al., CVPR 2019 / IJCV 2021), layout under ``root``::

    root/<category>/train/good/*.png
    root/<category>/test/<defect_type>/*.png            (defect_type "good" = normal)
    root/<category>/ground_truth/<defect_type>/<stem>_mask.png

MVTec 3D-AD (Bergmann et al., VISAPP 2022), only RGB images and masks are used::

    root/<category>/train/good/rgb/*.png
    root/<category>/validation/good/rgb/*.png
    root/<category>/test/<defect_type>/rgb/*.png
    root/<category>/test/<defect_type>/gt/*.png          (same stem as the image)

Both are released by MVTec Software GmbH under CC BY-NC-SA 4.0 (non-commercial use).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Union

from torch.utils.data import Dataset

from .download import download_and_extract
from .errors import DatasetError
from .transforms import load_item

__all__ = [
    "MVTEC_CATEGORIES",
    "MVTEC_TEXTURES",
    "MVTEC_OBJECTS",
    "MVTEC_URLS",
    "MVTEC_ARCHIVE_URL",
    "MVTEC_ARCHIVE_SHA256",
    "MVTEC_LICENSE",
    "MVTEC3D_CATEGORIES",
    "MVTEC3D_URL",
    "MVTecAD",
    "MVTec3DRGB",
    "download_mvtec",
]

PathLike = Union[str, "os.PathLike[str]"]
_IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

MVTEC_TEXTURES: tuple[str, ...] = ("carpet", "grid", "leather", "tile", "wood")
MVTEC_OBJECTS: tuple[str, ...] = (
    "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor", "zipper",
)
#: The 15 MVTec AD categories, sorted.
MVTEC_CATEGORIES: tuple[str, ...] = tuple(sorted(MVTEC_TEXTURES + MVTEC_OBJECTS))

_MYDRIVE = "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"
#: Official per-category archives (links on the MVTec AD download page). MVTec
#: publishes no per-category checksums; :func:`download_mvtec` prints the sha256
#: of what it fetched and checks the extracted folder layout instead.
MVTEC_URLS: dict[str, str] = {
    "bottle": _MYDRIVE + "420937370-1629951468/bottle.tar.xz",
    "cable": _MYDRIVE + "420937413-1629951498/cable.tar.xz",
    "capsule": _MYDRIVE + "420937454-1629951595/capsule.tar.xz",
    "carpet": _MYDRIVE + "420937484-1629951672/carpet.tar.xz",
    "grid": _MYDRIVE + "420937487-1629951814/grid.tar.xz",
    "hazelnut": _MYDRIVE + "420937545-1629951845/hazelnut.tar.xz",
    "leather": _MYDRIVE + "420937607-1629951964/leather.tar.xz",
    "metal_nut": _MYDRIVE + "420937637-1629952063/metal_nut.tar.xz",
    "pill": "https://www.mydrive.ch/shares/43421/11a215a5749fcfb75e331ddd5f8e43ee/download/420938129-1629953099/pill.tar.xz",
    "screw": _MYDRIVE + "420938130-1629953152/screw.tar.xz",
    "tile": _MYDRIVE + "420938133-1629953189/tile.tar.xz",
    "toothbrush": _MYDRIVE + "420938134-1629953256/toothbrush.tar.xz",
    "transistor": _MYDRIVE + "420938166-1629953277/transistor.tar.xz",
    "wood": _MYDRIVE + "420938383-1629953354/wood.tar.xz",
    "zipper": _MYDRIVE + "420938385-1629953449/zipper.tar.xz",
}
#: The whole data set in one archive (about 4.9 GB) and its sha256 (as used by anomalib).
MVTEC_ARCHIVE_URL = _MYDRIVE + "420938113-1629952094/mvtec_anomaly_detection.tar.xz"
MVTEC_ARCHIVE_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
MVTEC_PAGE = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
MVTEC_LICENSE = (
    "MVTec AD (c) MVTec Software GmbH is licensed under CC BY-NC-SA 4.0 "
    "(https://creativecommons.org/licenses/by-nc-sa/4.0/): attribution, non-commercial use "
    "only, share alike. If you use it, cite Bergmann et al., 'MVTec AD - A Comprehensive "
    "Real-World Dataset for Unsupervised Anomaly Detection', CVPR 2019. Data set page: " + MVTEC_PAGE
)

#: The 10 MVTec 3D-AD categories, sorted.
MVTEC3D_CATEGORIES: tuple[str, ...] = (
    "bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire",
)
MVTEC3D_URL = "https://www.mvtec.com/company/research/datasets/mvtec-3d-ad"


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMG_EXT)


def _subdirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class _FileDataset(Dataset):
    """Common item logic: ``samples`` is a list of ``(image, mask or None, defect_type)``."""

    samples: list[tuple[Path, Optional[Path], str]]
    image_size: int

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> list[int]:
        return [0 if t == "good" else 1 for _, _, t in self.samples]

    def defect_types_list(self) -> list[str]:
        """``defect_type`` of every item, in order (no image is read)."""
        return [t for _, _, t in self.samples]

    def __getitem__(self, index: int) -> dict:
        path, mask_path, dtype = self.samples[index]
        return load_item(path, mask_path, dtype, self.image_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, image_size={self.image_size})"


def download_mvtec(root: PathLike, category: Optional[str] = None, *, progress: bool = True) -> Path:
    """Download MVTec AD into ``root`` (one category, or all 15 with ``category=None``).

    Prints the licence first. The full archive is verified against its published
    sha256; the per-category archives have no published checksum, so the sha256 of
    the download is printed and the extracted layout is checked.
    """
    root = Path(root).expanduser()
    print(MVTEC_LICENSE, file=sys.stderr)
    if category is None:
        download_and_extract(MVTEC_ARCHIVE_URL, root, "sha256:" + MVTEC_ARCHIVE_SHA256, progress=progress)
        return root
    if category not in MVTEC_CATEGORIES:
        raise ValueError(f"unknown MVTec AD category {category!r}; valid categories: {', '.join(MVTEC_CATEGORIES)}")
    download_and_extract(MVTEC_URLS[category], root, None, progress=progress)
    if not (root / category / "train" / "good").is_dir():
        raise DatasetError(
            f"downloaded {MVTEC_URLS[category]} but {root / category / 'train' / 'good'} does not exist; "
            f"get the data by hand from {MVTEC_PAGE}"
        )
    return root


def _mvtec_layout(root: Path, category: str) -> str:
    return (
        f"{root}/\n"
        f"└── {category}/\n"
        "    ├── train/good/*.png\n"
        "    ├── test/<defect_type>/*.png      (test/good/ = normal test images)\n"
        "    └── ground_truth/<defect_type>/<stem>_mask.png"
    )


class MVTecAD(_FileDataset):
    """One MVTec AD category.

    Args:
        root: folder holding the category folders (e.g. ``~/dskd_data/mvtec_ad``).
        category: one of :data:`MVTEC_CATEGORIES`.
        split: ``"train"`` (normal images) or ``"test"``.
        image_size: side of the square resized images (the paper uses 256).
        download: fetch the category archive from MVTec if the folder is missing.
    """

    def __init__(
        self,
        root: PathLike,
        category: str,
        split: str = "train",
        image_size: int = 256,
        download: bool = False,
    ) -> None:
        if category not in MVTEC_CATEGORIES:
            raise ValueError(f"unknown MVTec AD category {category!r}; valid categories: {', '.join(MVTEC_CATEGORIES)}")
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} for MVTec AD; valid splits: train, test")
        self.root = Path(root).expanduser()
        self.category = category
        self.split = split
        self.image_size = int(image_size)
        self.name = f"mvtec/{category}"
        base = self.root / category
        if not base.is_dir():
            if download:
                download_mvtec(self.root, category)
            else:
                raise DatasetError(
                    f"MVTec AD category folder not found: {base}\nExpected layout:\n{_mvtec_layout(self.root, category)}\n"
                    f"Pass download=True to fetch it, or get it from {MVTEC_PAGE} (CC BY-NC-SA 4.0)."
                )
        self.defect_types = [d for d in _subdirs(base / "test") if d != "good"]

        samples: list[tuple[Path, Optional[Path], str]] = []
        if split == "train":
            folder = base / "train" / "good"
            samples = [(p, None, "good") for p in _images(folder)]
        else:
            folder = base / "test"
            for dtype in _subdirs(folder):
                for p in _images(folder / dtype):
                    if dtype == "good":
                        samples.append((p, None, "good"))
                        continue
                    m = base / "ground_truth" / dtype / f"{p.stem}_mask.png"
                    if not m.is_file():
                        raise DatasetError(f"mask missing for {p}: expected {m}")
                    samples.append((p, m, dtype))
        if not samples:
            raise DatasetError(
                f"MVTec AD split {split!r} of {category!r} is empty: no images in {folder}\n"
                f"Expected layout:\n{_mvtec_layout(self.root, category)}"
            )
        self.samples = samples


def mvtec3d_help(root: Path, category: str) -> str:
    return (
        "MVTec 3D-AD cannot be downloaded automatically: its licence terms (CC BY-NC-SA 4.0) are "
        f"accepted on the download form at {MVTEC3D_URL}. Download mvtec_3d_anomaly_detection.tar.xz "
        f"there and extract it so that the category folders lie directly in {root}:\n"
        f"{root}/\n"
        f"└── {category}/\n"
        "    ├── train/good/rgb/*.png\n"
        "    ├── validation/good/rgb/*.png\n"
        "    └── test/<defect_type>/{rgb,gt}/*.png"
    )


class MVTec3DRGB(_FileDataset):
    """The RGB images and ground-truth masks of one MVTec 3D-AD category (no point clouds).

    Args:
        root: folder holding the category folders (e.g. ``~/dskd_data/mvtec_3d``).
        category: one of :data:`MVTEC3D_CATEGORIES`.
        split: ``"train"``, ``"validation"`` (both normal only) or ``"test"``.
        image_size: side of the square resized images (the paper uses 256).
        download: not possible; ``True`` raises the same how-to-get-it message.
    """

    def __init__(
        self,
        root: PathLike,
        category: str,
        split: str = "train",
        image_size: int = 256,
        download: bool = False,
    ) -> None:
        if category not in MVTEC3D_CATEGORIES:
            raise ValueError(
                f"unknown MVTec 3D-AD category {category!r}; valid categories: {', '.join(MVTEC3D_CATEGORIES)}"
            )
        if split not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {split!r} for MVTec 3D-AD; valid splits: train, validation, test")
        self.root = Path(root).expanduser()
        self.category = category
        self.split = split
        self.image_size = int(image_size)
        self.name = f"mvtec3d/{category}"
        base = self.root / category
        if not base.is_dir():  # download=True cannot help here: see mvtec3d_help
            raise DatasetError(f"MVTec 3D-AD category folder not found: {base}\n" + mvtec3d_help(self.root, category))
        self.defect_types = [d for d in _subdirs(base / "test") if d != "good"]

        folder = base / split
        samples: list[tuple[Path, Optional[Path], str]] = []
        for dtype in _subdirs(folder):
            if split != "test" and dtype != "good":
                continue
            gt = {q.stem: q for q in _images(folder / dtype / "gt")}
            for p in _images(folder / dtype / "rgb"):
                m = gt.get(p.stem)  # normal images may come without a gt file: empty mask
                if m is None and dtype != "good":
                    raise DatasetError(f"mask missing for {p}: expected {folder / dtype / 'gt' / p.name}")
                samples.append((p, m, dtype))
        if not samples:
            raise DatasetError(
                f"MVTec 3D-AD split {split!r} of {category!r} is empty: no images in {folder}/<type>/rgb/\n"
                + mvtec3d_help(self.root, category)
            )
        self.samples = samples
