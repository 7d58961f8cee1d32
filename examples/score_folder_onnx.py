"""Score a folder of images with a model exported by ``dskd export``, with onnxruntime, numpy and Pillow
alone (no dskd, no torch): what a line computer runs.

    python examples/score_folder_onnx.py model.onnx path/to/images [--threshold T] [--out scores.json]

For every image (.png, .jpg, .jpeg, .bmp, .tif, .tiff, found recursively) it prints the score (the
maximum of the anomaly map, Eq. 10) and the decision of Eq. (1), ``score >= threshold``, at the threshold
stored in the file's metadata (calibrated on held-out normal training images) unless ``--threshold`` is
given. ``--out`` also writes the records as JSON. The preprocessing is the one the metadata describes:
RGB, resized to the model's size with Pillow's bilinear filter, scaled to [0, 1], normalised per channel.
8-bit images only (dskd itself also reads 16-bit ones).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def preprocess(path: Path, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """One image as the model's input: (3, size, size) float32, normalised."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        rgb = np.asarray(im, dtype=np.uint8).astype(np.float32) * np.float32(1.0 / 255.0)
    return ((rgb.transpose(2, 0, 1) - mean) / std).astype(np.float32)


def score_folder(model: str, folder: str, threshold: float | None = None, batch: int = 8) -> dict:
    """Scores and decisions for every image under ``folder``."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    size = int(meta["dskd.image_size"])
    mean = np.asarray(json.loads(meta["dskd.mean"]), np.float32).reshape(3, 1, 1)
    std = np.asarray(json.loads(meta["dskd.std"]), np.float32).reshape(3, 1, 1)
    rule = "given on the command line"
    if threshold is None and meta.get("dskd.threshold"):
        threshold, rule = float(meta["dskd.threshold"]), meta["dskd.threshold_rule"]
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise SystemExit(f"score_folder_onnx: no images found in {folder}")
    records = []
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        images = np.stack([preprocess(p, size, mean, std) for p in chunk])
        maps, scores = session.run(["anomaly_map", "score"], {"images": images})
        for path, m, s in zip(chunk, maps, scores):
            records.append({"image": str(path), "score": float(s),
                            "anomalous": bool(s >= threshold) if threshold is not None else None,
                            "region_fraction": float((m >= threshold).mean()) if threshold is not None else None})
    return {"model": model, "threshold": threshold, "rule": rule if threshold is not None else None,
            "images": records}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the .onnx file written by 'dskd export'")
    ap.add_argument("folder", help="folder of images (searched recursively)")
    ap.add_argument("--threshold", type=float, help="decide at this score instead of the stored threshold")
    ap.add_argument("--out", help="also write the records to this JSON file")
    args = ap.parse_args(argv)
    result = score_folder(args.model, args.folder, args.threshold)
    for r in result["images"]:
        verdict = {True: "ANOMALOUS", False: "normal", None: "no threshold"}[r["anomalous"]]
        print(f"{r['score']:.5f}  {verdict:<12}  {r['image']}")
    if result["threshold"] is not None:
        flagged = sum(r["anomalous"] for r in result["images"])
        print(f"{flagged} of {len(result['images'])} anomalous at threshold {result['threshold']:.5g} ({result['rule']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
