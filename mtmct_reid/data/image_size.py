"""Image sizes as users write them (``"384x192"``) and as code passes them (``(384, 192)``).

Kept apart from :mod:`mtmct_reid.data.images` so that commands which never touch torch (``synth``)
parse sizes the same way without importing it.
"""

from __future__ import annotations

import re
from typing import Any

from mtmct_reid.errors import ReIDError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")

#: The largest side any image size may have (what image files and libraries handle).
MAX_SIDE = 65_535


def parse_image_size(text: str, label: str = "image size") -> tuple[int, int]:
    """Parse ``"HxW"`` (height first, as torchvision sizes are) into ``(H, W)``.

    Args:
        text: the size as written, e.g. ``"384x192"``.
        label: how errors name it (e.g. ``"--image-size"``).

    Example:
        >>> parse_image_size("384x192")
        (384, 192)
    """
    match = _SIZE.match(str(text))
    if not match:
        raise ReIDError(f"{label} '{text}': expected HEIGHTxWIDTH in pixels, e.g. 384x192")
    if max(len(match.group(1).lstrip("0")), len(match.group(2).lstrip("0"))) > len(str(MAX_SIDE)):
        raise ReIDError(f"{label} '{text}': height and width must be at most {MAX_SIDE} pixels")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 1 or width < 1:
        raise ReIDError(f"{label} '{text}': height and width must be positive")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ReIDError(f"{label} '{text}': height and width must be at most {MAX_SIDE} pixels")
    return height, width


def as_image_size(value: Any, label: str = "image_size") -> tuple[int, int]:
    """``"HxW"`` text or a ``(height, width)`` pair, checked, as ``(H, W)`` integers.

    Example:
        >>> as_image_size([256, 128]), as_image_size("128x64")
        ((256, 128), (128, 64))
    """
    if isinstance(value, str):
        return parse_image_size(value)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ReIDError(f"{label} {value!r}: expected HEIGHTxWIDTH or [height, width]") from None
    if height < 1 or width < 1:
        raise ReIDError(f"{label} {value!r}: height and width must be positive")
    return height, width
