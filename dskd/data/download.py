"""Download an archive, verify its checksum and extract it (standard library + tqdm).

Used by :class:`dskd.data.MVTecAD` with ``download=True``. Nothing in the test
suite touches the network: the tests feed :func:`download_and_extract` a local
``file://`` URL.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional, Union

from ..checksums import file_checksum
from .errors import DatasetError

__all__ = ["download_and_extract", "parse_checksum", "file_checksum"]

_CHUNK = 1 << 20  # download chunk


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"``, ``"md5:<hex>"`` or bare hex (64 digits: sha256, 32: md5)
    -> ``(algorithm, lower-case hex)``."""
    text = checksum.strip()
    if ":" in text:
        algo, _, digest = text.partition(":")
        algo = algo.strip().lower()
    else:
        digest = text
        algo = {64: "sha256", 32: "md5", 40: "sha1", 128: "sha512"}.get(len(text), "")
    digest = digest.strip().lower()
    if algo not in hashlib.algorithms_available or not digest or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"cannot understand checksum {checksum!r}; use 'sha256:<hex>' or 'md5:<hex>'")
    return algo, digest


def _safe_extract_tar(tf: tarfile.TarFile, dest: Path) -> None:
    dest_r = dest.resolve()
    for m in tf.getmembers():
        target = (dest / m.name).resolve()
        if target != dest_r and dest_r not in target.parents:
            raise DatasetError(f"refusing to extract {m.name!r}: it would land outside {dest}")
        if m.issym() or m.islnk():
            link = (target.parent / m.linkname).resolve()
            if dest_r not in link.parents and link != dest_r:
                raise DatasetError(f"refusing to extract link {m.name!r} -> {m.linkname!r} outside {dest}")
    if hasattr(tarfile, "data_filter"):
        tf.extractall(dest, filter="data")
    else:  # pragma: no cover - Python < 3.11.4
        tf.extractall(dest)


def _extract(archive: Path, dest: Path) -> None:
    name = archive.name.lower()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for n in zf.namelist():
                    t = (dest / n).resolve()
                    if dest.resolve() not in t.parents and t != dest.resolve():
                        raise DatasetError(f"refusing to extract {n!r}: it would land outside {dest}")
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:  # .tar, .tar.gz, .tar.xz, .tar.bz2
                _safe_extract_tar(tf, dest)
        else:
            raise DatasetError(f"{archive} is neither a tar nor a zip archive ({name})")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DatasetError(f"cannot extract {archive}: {type(e).__name__}: {e}") from e


def download_and_extract(
    url: str,
    dest: Union[str, "os.PathLike[str]"],
    checksum: Optional[str] = None,
    *,
    filename: Optional[str] = None,
    keep_archive: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` into ``dest``, verify ``checksum``, extract there; return ``dest``.

    Args:
        url: ``https://``, ``http://``, ``ftp://`` or ``file://`` URL of a tar/zip archive.
        dest: folder the archive is extracted into (created if needed).
        checksum: ``"sha256:<hex>"`` / ``"md5:<hex>"`` / bare hex. ``None`` skips the
            check (a warning prints the sha256 so it can be recorded).
        filename: name of the downloaded file (default: last part of the URL path).
        keep_archive: keep the archive next to the extracted files.
        progress: show a tqdm progress bar.

    Raises:
        DatasetError: download failure, checksum mismatch (naming the expected and the
            computed digest; the bad file is deleted) or an archive that cannot be
            extracted safely.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    if filename is None:
        filename = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    archive = dest / filename
    part = archive.with_name(archive.name + ".part")
    algo, expected = parse_checksum(checksum) if checksum else ("sha256", None)
    h = hashlib.new(algo)

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None

    try:
        req = urllib.request.Request(url, headers={"User-Agent": "dskd-downloader"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
            total = int(total) if total and str(total).isdigit() else None
            bar = (
                tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=filename, file=sys.stderr)
                if progress and tqdm is not None
                else None
            )
            try:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except Exception as e:  # URLError, HTTPError, timeouts, disk full...
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed: {type(e).__name__}: {e}") from e

    got = h.hexdigest()
    if expected is None:
        print(f"warning: no published checksum for {url}; {algo} of the download is {got}", file=sys.stderr)
    elif got != expected:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"checksum mismatch for {url}: expected {algo} {expected}, got {got} "
            "(the partial/corrupt file was deleted; try again)"
        )
    os.replace(part, archive)
    _extract(archive, dest)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return dest
