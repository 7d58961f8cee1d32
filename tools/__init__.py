"""Tools that keep the repository's course files consistent (run from the repository's root).

Not part of the ``dskd`` package (the wheel does not ship them): they read the repository's own files,
such as ``_config.yml``, ``_toc.yml`` and the built HTML book.
"""
