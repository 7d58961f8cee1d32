"""The one file-checksum helper: teacher weights, run keys and downloaded archives all use it."""
from __future__ import annotations

import hashlib
import os
from typing import Optional, Union

_CHUNK = 1 << 20


def file_checksum(path: Union[str, "os.PathLike[str]"], algo: str = "sha256", length: Optional[int] = None) -> str:
    """Hex digest of a file (read in 1 MiB chunks); ``length`` keeps only its first digits."""
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    text = digest.hexdigest()
    return text if length is None else text[:length]
