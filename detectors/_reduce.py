"""The 1-D reductions of the per-second detectors, without NumPy's Python wrappers.

``ndarray.sum``, ``ndarray.all`` and ``ndarray.any`` of a 1-D array call these ufunc reductions
through a Python function (``numpy._core._methods``) that costs about as much as the reduction of
a few hundred elements; called directly they give the same result (the same pairwise sum, the
same floats) without it.

>>> a = np.array([0.1, 0.2, 0.3, 1e16, -1e16, 0.7, 0.4, 0.5, 0.9])
>>> float(sum1(a)) == float(a.sum()), bool(all1(a > -1e17)), bool(any1(a > 1e15))
(True, True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["all1", "any1", "sum1"]

sum1 = np.add.reduce
"""``a.sum()`` of a 1-D float array ``a``: ``sum1(a)``."""

all1 = np.logical_and.reduce
"""``a.all()`` of a 1-D array: ``all1(a)``."""

any1 = np.logical_or.reduce
"""``a.any()`` of a 1-D array: ``any1(a)``."""
