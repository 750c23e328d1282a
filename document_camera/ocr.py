"""Readability measurement: OCR a received page and compare it with the true text.

Character error rate = Levenshtein distance / length of the true text, after both are
normalised (whitespace collapsed), the usual OCR measure.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from document_camera.images import Image

OCR_MIN_TEXT_HEIGHT = 1500  # pixels of page height handed to tesseract (10 pt ≈ 18 px em)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time with numpy.

    Insertions chain along the row; they are resolved with a running minimum:
    row[j] = min_k≤j (cand[k] + j − k) = j + cummin(cand − k).
    """
    if not a:
        return len(b)
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    row = idx.copy()
    codes = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    for i in range(1, len(a) + 1):
        cost = (bb != codes[i - 1]).astype(np.int64)
        cand = np.empty_like(row)
        cand[0] = i
        cand[1:] = np.minimum(row[1:] + 1, row[:-1] + cost)
        row = idx + np.minimum.accumulate(cand - idx)
    return int(row[-1])


def character_error_rate(truth: str, recognised: str) -> float:
    truth_n, rec_n = normalise(truth), normalise(recognised)
    if not truth_n:
        return 0.0 if not rec_n else 1.0
    return edit_distance(truth_n, rec_n) / len(truth_n)


def ocr_page(image: Image, lang: str = "eng") -> str:
    """Tesseract on a page image, upscaled so 10 pt text has the size tesseract reads best."""
    import pytesseract

    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if gray.shape[0] < OCR_MIN_TEXT_HEIGHT:
        scale = OCR_MIN_TEXT_HEIGHT / gray.shape[0]
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return str(pytesseract.image_to_string(gray, lang=lang, config="--psm 6"))
