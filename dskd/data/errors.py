"""The one exception type of :mod:`dskd.data`."""
from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data set is missing, incomplete or holds a file that cannot be used.

    The message always names the offending path(s) and says what was expected.
    It subclasses :class:`ValueError` so callers that only catch ``ValueError``
    still see it.
    """
