"""Magnetic Tile Defects (MT Defects), the real data set of the paper's Table 5.

Huang, Qiu & Yuan, "Surface defect saliency of magnetic tile", The Visual Computer
36 (2020); images from github.com/abin24/Magnetic-tile-defect-datasets.

Layout expected under ``root``::

    root/
    ├── MT_Free/Imgs/      <name>.jpg (grey image) + <name>.png (mask, all 0)
    ├── MT_Blowhole/Imgs/  <name>.jpg + <name>.png (mask, 0 = normal, 255 = defect)
    ├── MT_Break/Imgs/
    ├── MT_Crack/Imgs/
    ├── MT_Fray/Imgs/
    └── MT_Uneven/Imgs/

The data set has no official train/test split. This loader uses a deterministic one:

* ``train``: ``n_train = int(0.8 * n_free)`` defect-free images (761 of the 952), chosen
  by ``numpy.random.default_rng(seed).permutation`` of the *sorted* MT_Free file list
  (then listed in sorted order);
* ``test``: the other MT_Free images (191) plus every defective image (392:
  blowhole 115, break 85, crack 57, fray 32, uneven 103) -> 583 images;
* ``all``: all 1344 images.

Masks are thresholded at ``> 127`` after a nearest resize. Note that four MT_Uneven
masks (e.g. ``exp3_num_45042.png``) are entirely zero in the published data; those
images keep ``label = 1`` (the label comes from the folder).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from torch.utils.data import Dataset

from .errors import DatasetError
from .transforms import load_item

__all__ = ["MagneticTile", "MT_FOLDERS", "MT_DEFECT_TYPES", "MT_LAYOUT", "MT_TRAIN_FRACTION"]

#: folder name -> defect_type ("good" for the defect-free folder).
MT_FOLDERS: dict[str, str] = {
    "MT_Free": "good",
    "MT_Blowhole": "blowhole",
    "MT_Break": "break",
    "MT_Crack": "crack",
    "MT_Fray": "fray",
    "MT_Uneven": "uneven",
}
MT_DEFECT_TYPES: tuple[str, ...] = tuple(sorted(v for v in MT_FOLDERS.values() if v != "good"))
MT_TRAIN_FRACTION = 0.8

MT_LAYOUT = """\
magnetic-tile/
├── MT_Free/Imgs/      *.jpg images (+ *.png masks, all zero)
├── MT_Blowhole/Imgs/  *.jpg images + *.png masks (0/255)
├── MT_Break/Imgs/
├── MT_Crack/Imgs/
├── MT_Fray/Imgs/
└── MT_Uneven/Imgs/
(from https://github.com/abin24/Magnetic-tile-defect-datasets)"""

_SPLITS = ("train", "test", "all")


def _list_folder(root: Path, folder: str) -> list[Path]:
    d = root / folder / "Imgs"
    if not d.is_dir():
        raise DatasetError(
            f"MT Defects folder missing: {d}\n(root given: {root})\nExpected layout:\n{MT_LAYOUT}"
        )
    return sorted(p for p in d.iterdir() if p.suffix.lower() == ".jpg" and p.is_file())


class MagneticTile(Dataset):
    """MT Defects as ``{"image", "mask", "label", "defect_type", "path"}`` items.

    Args:
        root: folder holding ``MT_Free``, ``MT_Blowhole``, ... (see module doc).
        split: ``"train"``, ``"test"`` or ``"all"``.
        image_size: side of the square resized images (the paper uses 128).
        seed: seed of the permutation that picks the training images.
    """

    def __init__(
        self,
        root: Union[str, "os.PathLike[str]"],
        split: str = "train",
        image_size: int = 128,
        seed: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r} for MT Defects; valid splits: {', '.join(_SPLITS)}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(
                f"MT Defects root not found: {self.root}\nExpected layout:\n{MT_LAYOUT}\n"
                "Set DSKD_DATA to a folder holding magnetic-tile/ or pass root=..."
            )
        self.split = split
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.name = "mt-defects"
        self.defect_types: list[str] = list(MT_DEFECT_TYPES)

        listing = {folder: _list_folder(self.root, folder) for folder in MT_FOLDERS}
        free = listing["MT_Free"]
        self.n_train = int(MT_TRAIN_FRACTION * len(free))
        perm = np.random.default_rng(self.seed).permutation(len(free))
        train_idx = set(perm[: self.n_train].tolist())
        train = [p for i, p in enumerate(free) if i in train_idx]
        test_free = [p for i, p in enumerate(free) if i not in train_idx]
        defects = [(p, MT_FOLDERS[f]) for f in MT_FOLDERS if f != "MT_Free" for p in listing[f]]

        if split == "train":
            samples = [(p, "good") for p in train]
        elif split == "test":
            samples = [(p, "good") for p in test_free] + defects
        else:
            samples = [(p, "good") for p in free] + defects
        if not samples:
            raise DatasetError(
                f"MT Defects split {split!r} is empty under {self.root} "
                f"(no *.jpg found in the Imgs folders). Expected layout:\n{MT_LAYOUT}"
            )
        self.samples: list[tuple[Path, str]] = samples

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> list[int]:
        return [0 if t == "good" else 1 for _, t in self.samples]

    def defect_types_list(self) -> list[str]:
        """``defect_type`` of every item, in order (no image is read)."""
        return [t for _, t in self.samples]

    def mask_path(self, index: int) -> Path | None:
        img, dtype = self.samples[index]
        m = img.with_suffix(".png")
        if m.is_file():
            return m
        if dtype == "good":
            return None  # a defect-free image needs no mask file
        raise DatasetError(f"mask file missing for defective image {img}: expected {m}")

    def __getitem__(self, index: int) -> dict:
        path, dtype = self.samples[index]
        return load_item(path, self.mask_path(index), dtype, self.image_size)

    def __repr__(self) -> str:
        return f"MagneticTile(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, image_size={self.image_size})"
