"""The paper's numbers as data: Tables 1 to 9 of Sec. 4, transcribed from the paper's text.

All values are in percent, exactly as printed (bold marks dropped); ``None`` is the paper's "-"
(a metric the compared method did not report). Categories use the data modules' names
(``metal_nut``, ``cable_gland``); :data:`DISPLAY_NAMES` gives the paper's spelling. Each table keeps
the paper's row order, and its ``"mean"`` row is the paper's printed mean (not recomputed).

``OURS`` in every table is the paper's "Ours" column (DSKD); the other keys are the baselines the
paper compares with. :mod:`dskd.reproduce` prints these beside the numbers this rebuild measures.
"""
from __future__ import annotations

from typing import Optional

__all__ = [
    "OURS", "MVTEC_PAPER_ORDER", "MVTEC3D_PAPER_ORDER", "DISPLAY_NAMES", "TABLE1", "TABLE1_METHODS",
    "TABLE2", "TABLE2_METHODS", "TABLE3", "TABLE3_METHODS", "TABLE4", "TABLE5", "TABLE5_METHODS",
    "MT_SETTINGS", "TABLE6", "ABLATION_RESULTS", "ABLATION_TABLES", "display_name",
]

OURS = "Ours"

#: the paper's row order in Tables 1 and 2 (textures, then objects), and in Tables 3 and 4
MVTEC_PAPER_ORDER: tuple[str, ...] = (
    "carpet", "grid", "leather", "tile", "wood", "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill",
    "screw", "toothbrush", "transistor", "zipper",
)
MVTEC3D_PAPER_ORDER: tuple[str, ...] = (
    "bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire",
)
DISPLAY_NAMES: dict[str, str] = {
    **{c: c.capitalize() for c in MVTEC_PAPER_ORDER + MVTEC3D_PAPER_ORDER},
    "metal_nut": "Metal nut", "cable_gland": "Cable Gland", "mean": "Mean",
}


def display_name(category: str) -> str:
    """The paper's spelling of a category ('metal_nut' -> 'Metal nut')."""
    return DISPLAY_NAMES.get(category, category)


def _columns(methods: tuple[str, ...], rows: dict[str, tuple]) -> dict[str, dict[str, object]]:
    """Turn the paper's row-wise layout into {method: {category: value}}."""
    for name, row in rows.items():
        assert len(row) == len(methods), f"row {name!r} has {len(row)} values for {len(methods)} methods"
    return {m: {c: row[i] for c, row in rows.items()} for i, m in enumerate(methods)}


# ---------------------------------------------------------------------------------------------------
# Table 1. Image-level AUROC (%) on MVTec AD
TABLE1_METHODS: tuple[str, ...] = (
    "Patch SVDD", "AE-SSIM", "AnoGAN", "Spade", "Padim", "CutPaste", "MB-PFM", "DSN", "MKD", "STPM", "FAVAE", OURS,
)
_T1_ROWS: dict[str, tuple[float, ...]] = {
    "carpet": (92.9, 67.0, 49.0, 92.8, 99.8, 93.9, 100, 96.8, 79.3, 98.9, 67.1, 100),
    "grid": (94.6, 69.0, 51.0, 47.3, 96.7, 100, 98.0, 95.6, 78.0, 100, 97.0, 100),
    "leather": (90.9, 46.0, 52.0, 95.4, 100, 100, 100, 91.8, 95.1, 100, 67.5, 100),
    "tile": (97.8, 52.0, 51.0, 96.5, 98.1, 94.6, 99.6, 96.4, 91.6, 95.5, 80.5, 98.4),
    "wood": (96.5, 83.0, 68.0, 95.8, 99.2, 99.1, 99.5, 98.3, 94.3, 99.2, 94.8, 99.6),
    "bottle": (98.6, 88.0, 69.0, 97.2, 99.9, 98.2, 100, 100, 99.4, 100, 99.9, 100),
    "cable": (90.3, 61.0, 53.0, 84.8, 92.7, 81.2, 98.8, 98.3, 89.2, 92.3, 95.0, 99.2),
    "capsule": (76.7, 61.0, 58.0, 91.0, 91.3, 98.2, 94.5, 91.6, 80.5, 88.0, 80.4, 93.1),
    "hazelnut": (92.0, 54.0, 50.0, 88.1, 92.0, 98.3, 100, 99.4, 98.4, 100, 99.3, 100),
    "metal_nut": (94.0, 54.0, 50.0, 71.0, 98.7, 99.9, 100, 97.7, 73.6, 100, 85.2, 99.7),
    "pill": (86.1, 60.0, 68.0, 80.1, 93.3, 94.9, 96.5, 89.5, 82.7, 93.8, 82.1, 96.2),
    "screw": (81.3, 51.0, 35.0, 66.7, 85.8, 88.7, 91.8, 98.1, 83.3, 88.2, 83.7, 97.1),
    "toothbrush": (100, 74.0, 57.0, 88.9, 96.1, 99.4, 88.6, 100, 92.2, 87.8, 95.8, 98.9),
    "transistor": (91.5, 52.0, 67.0, 90.3, 97.4, 96.1, 97.8, 91.3, 85.6, 93.7, 97.2, 97.5),
    "zipper": (97.9, 80.0, 59.0, 96.6, 90.3, 99.9, 97.4, 96.1, 93.2, 93.6, 93.2, 97.4),
    "mean": (92.1, 63.0, 55.0, 85.5, 95.5, 96.1, 97.5, 96.1, 87.8, 95.4, 87.9, 98.5),
}
#: {method: {category or "mean": image AUROC %}}
TABLE1: dict[str, dict[str, float]] = _columns(TABLE1_METHODS, _T1_ROWS)  # type: ignore[assignment]

# ---------------------------------------------------------------------------------------------------
# Table 2. Pixel-level AUROC (%) / PRO (%) on MVTec AD; PRO None where the paper prints "-"
TABLE2_METHODS = TABLE1_METHODS
_T2_ROWS: dict[str, tuple[tuple[float, Optional[float]], ...]] = {
    "carpet": ((92.6, None), (87.0, 64.7), (54.0, 20.4), (97.5, 94.7), (99.1, 96.2), (98.3, None), (99.2, 96.9),
               (99.1, None), (95.6, None), (98.8, 95.8), (96.0, None), (99.2, 97.7)),
    "grid": ((96.2, None), (94.0, 84.9), (58.0, 22.6), (93.7, 86.7), (97.3, 94.6), (97.5, None), (98.8, 96.0),
             (98.1, None), (91.8, None), (99.0, 96.6), (99.3, None), (99.4, 97.7)),
    "leather": ((97.4, None), (78.0, 56.1), (64.0, 37.8), (97.6, 97.2), (99.2, 97.8), (99.5, None), (99.4, 98.8),
                (99.2, None), (98.1, None), (99.3, 98.0), (98.1, None), (99.4, 99.1)),
    "tile": ((91.4, None), (59.0, 17.5), (50.0, 17.7), (87.4, 75.9), (94.1, 86.0), (90.5, None), (96.2, 88.7),
             (90.9, None), (82.8, None), (97.4, 92.1), (71.4, None), (94.5, 88.2)),
    "wood": ((90.8, None), (73.0, 60.5), (62.0, 38.6), (88.5, 87.4), (94.9, 91.1), (95.5, None), (95.6, 92.6),
             (94.1, None), (84.8, None), (97.2, 93.6), (89.9, None), (94.3, 91.6)),
    "bottle": ((98.1, None), (93.0, 83.4), (86.0, 62.0), (98.4, 95.5), (98.3, 94.8), (97.6, None), (98.4, 95.4),
               (96.4, None), (96.3, None), (98.8, 95.1), (96.3, None), (98.7, 96.4)),
    "cable": ((96.8, None), (82.0, 47.8), (78.0, 38.3), (97.2, 90.9), (96.7, 88.8), (90.0, None), (96.7, 94.2),
              (97.1, None), (82.4, None), (95.5, 87.7), (96.9, None), (97.5, 92.5)),
    "capsule": ((95.8, None), (94.0, 86.0), (84.0, 30.6), (99.0, 93.7), (98.5, 93.5), (97.4, None), (98.3, 91.7),
                (98.3, None), (95.9, None), (98.3, 92.2), (97.6, None), (98.7, 94.4)),
    "hazelnut": ((97.5, None), (97.0, 91.6), (87.0, 69.8), (99.1, 95.4), (98.2, 92.6), (97.3, None), (99.1, 96.7),
                 (98.8, None), (94.6, None), (98.5, 94.3), (98.7, None), (98.8, 94.6)),
    "metal_nut": ((98.0, None), (89.0, 60.3), (76.0, 32.0), (98.1, 94.4), (97.2, 85.6), (93.1, None), (97.2, 94.6),
                  (98.3, None), (86.4, None), (97.6, 94.5), (96.6, None), (96.7, 89.5)),
    "pill": ((95.1, None), (91.0, 83.0), (87.0, 77.6), (96.5, 94.6), (95.7, 92.7), (95.7, None), (97.2, 96.1),
             (96.7, None), (89.6, None), (97.8, 96.5), (95.3, None), (97.1, 94.7)),
    "screw": ((95.7, None), (92.0, 88.7), (80.0, 46.6), (98.9, 96.0), (98.5, 94.4), (96.7, None), (98.7, 93.4),
              (99.3, None), (96.0, None), (98.3, 93.0), (99.3, None), (99.4, 94.2)),
    "toothbrush": ((98.1, None), (96.0, 78.4), (90.0, 74.9), (97.9, 93.5), (98.8, 93.1), (98.1, None), (98.6, 90.7),
                   (98.6, None), (96.1, None), (98.9, 92.2), (98.7, None), (99.1, 94.5)),
    "transistor": ((97.0, None), (90.0, 72.5), (80.0, 54.9), (94.1, 87.4), (97.5, 84.5), (93.0, None), (87.8, 74.9),
                   (87.0, None), (76.5, None), (82.5, 69.5), (98.4, None), (91.5, 80.2)),
    "zipper": ((95.1, None), (88.0, 66.5), (78.0, 46.7), (96.5, 92.6), (98.5, 95.9), (99.3, None), (98.2, 94.8),
               (98.2, None), (93.9, None), (98.5, 95.2), (96.8, None), (97.5, 93.5)),
    "mean": ((95.7, None), (87.0, 69.4), (74.3, 44.3), (96.5, 91.7), (97.5, 92.1), (96.0, None), (97.3, 93.0),
             (96.7, None), (90.7, None), (97.0, 92.1), (95.3, None), (97.6, 93.5)),
}
#: {method: {category or "mean": (pixel AUROC %, PRO % or None)}}
TABLE2: dict[str, dict[str, tuple[float, Optional[float]]]] = _columns(TABLE2_METHODS, _T2_ROWS)  # type: ignore

# ---------------------------------------------------------------------------------------------------
# Table 3. Image-level AUROC (%) on MVTec 3D-AD (RGB)
TABLE3_METHODS: tuple[str, ...] = ("Padim", "PatchCore", "CS-flow", "STPM", OURS)
_T3_ROWS: dict[str, tuple[float, ...]] = {
    "bagel": (97.5, 87.6, 94.1, 93.0, 96.1),
    "cable_gland": (77.5, 88.0, 93.0, 84.7, 93.0),
    "carrot": (69.8, 79.1, 82.7, 89.0, 90.0),
    "cookie": (58.2, 68.2, 79.5, 57.5, 65.4),
    "dowel": (95.9, 91.2, 99.0, 94.7, 97.6),
    "foam": (66.3, 70.1, 88.6, 76.6, 84.8),
    "peach": (85.8, 69.5, 73.1, 71.0, 88.0),
    "potato": (53.5, 61.8, 47.1, 59.8, 65.5),
    "rope": (83.2, 84.1, 98.6, 96.5, 98.0),
    "tire": (76.0, 70.2, 74.5, 70.1, 86.2),
    "mean": (76.4, 77.0, 83.0, 79.3, 86.4),
}
#: {method: {category or "mean": image AUROC %}}
TABLE3: dict[str, dict[str, float]] = _columns(TABLE3_METHODS, _T3_ROWS)  # type: ignore[assignment]

# ---------------------------------------------------------------------------------------------------
# Table 4. Pixel-level AUROC (%) and PRO (%) on MVTec 3D-AD (RGB): the paper lists DSKD only
#: {category or "mean": (pixel AUROC %, PRO %)}
TABLE4: dict[str, tuple[float, float]] = {
    "bagel": (99.0, 95.0),
    "cable_gland": (99.1, 98.8),
    "carrot": (99.2, 98.5),
    "cookie": (97.9, 89.0),
    "dowel": (99.3, 97.6),
    "foam": (95.5, 85.8),
    "peach": (99.1, 97.9),
    "potato": (99.0, 97.6),
    "rope": (99.1, 94.7),
    "tire": (99.1, 97.4),
    "mean": (98.6, 95.2),
}

# ---------------------------------------------------------------------------------------------------
# Table 5. MT Defects: image AUROC, pixel AUROC, PRO (%); the paper gives no per-defect-type numbers
TABLE5_METHODS: tuple[str, ...] = ("AE-SSIM", "RIAD", "FAVAE", "DSN", OURS)
#: {method: (image AUROC %, pixel AUROC %, PRO % or None)}
TABLE5: dict[str, tuple[float, float, Optional[float]]] = {
    "AE-SSIM": (60.1, 78.3, None),
    "RIAD": (75.2, 82.7, None),
    "FAVAE": (83.4, 86.2, None),
    "DSN": (89.1, 98.0, None),
    OURS: (96.2, 83.3, 70.3),
}

#: what the paper says about its MT Defects setting (Sec. 4.1): 128 x 128 inputs; no split is given
MT_SETTINGS = {"image_size": 128, "split": "not stated in the paper"}


# ---------------------------------------------------------------------------------------------------
#: Table 6: complexity (Intel i7 @ 2.3 GHz laptop CPU; image size not stated, MVTec at 256 x 256)
TABLE6: dict[str, dict[str, float]] = {
    "PaDiM": {"inference_s": 0.890, "gflops": 22.85, "params_m": 68.9, "memory_mb": 3800},
    "MKD": {"inference_s": 0.034, "gflops": 20.96, "params_m": 15.0, "memory_mb": 4},
    "DSKD (paper)": {"inference_s": 0.217, "gflops": 6.17, "params_m": 39.3, "memory_mb": 105},
}

# ---------------------------------------------------------------------------------------------------
#: Tables 7 to 9 (ablations on MVTec AD): {study: {variant: (image AUROC %, pixel AUROC %, PRO %)}}, means
ABLATION_RESULTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "architecture": {"DS": (98.5, 97.6, 93.5), "T-E": (95.3, 96.1, 89.4), "T-D": (97.8, 97.1, 93.1),
                     "E-D": (93.2, 94.6, 87.7)},
    "dfe": {"with DFE": (98.5, 97.6, 93.5), "without DFE": (75.6, 89.6, 76.5)},
    "layers": {"M1": (96.0, 95.9, 88.0), "M2": (96.5, 96.4, 91.0), "M3": (92.7, 94.2, 88.7),
               "M1-3": (98.5, 97.5, 93.5)},
}
#: which table of the paper each study reproduces
ABLATION_TABLES: dict[str, str] = {"architecture": "Table 7", "dfe": "Table 8", "layers": "Table 9"}
