"""Array types shared by the document-camera modules.

OpenCV's stubs type every result as a generic array, so pixel arrays are typed loosely here;
the convention is BGR uint8 images and float32 (x, y) corner arrays of shape (4, 2).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

Image = NDArray[Any]  # H×W×3 BGR uint8 (or H×W grey)
Quad = NDArray[Any]  # 4×2 float32: top-left, top-right, bottom-right, bottom-left
