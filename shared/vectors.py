"""Vector helpers shared by the in-process indexes (cache L1, retrieval)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """`vector` as float32 scaled to length 1 (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array
