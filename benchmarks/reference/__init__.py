"""Reference-parity comparisons, one module per method (``benchmarks/compare_reference.py``).

Each module compares iadbench's implementation of one method with its reference implementation
(anomalib from PyPI, or the authors' code from a checkout the user names) at equal weights on
the same images, and exposes:

* ``REFERENCE``: what it compares with, e.g. ``"anomalib WinClipModel"``;
* ``add_arguments(parser)``: its own options (a checkout path such as ``--crane-repo``);
* ``run(args, data) -> list[dict]``: one row per setting, built with :func:`common.row`, where
  ``data`` is ``{category: (test [(name, uint8 RGB)], train [uint8 RGB])}``;
* optionally ``DATA``: what it compares on instead, when it does not use ``data``.

Nothing of a reference's code is copied here: PyPI references are imported, authors' code is
imported from the user's checkout (:func:`common.import_checkout`).
"""
