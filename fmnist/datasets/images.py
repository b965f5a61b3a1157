"""Opening a picture, once for every path that reads one (a folder dataset, predict): Pillow's decompression-bomb
guard made an error, a size limit read from the header before any pixel is decoded, and the one conversion to a
model's (C, H, W)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UsageError, one_line

MAX_PIXELS = 50_000_000  # a photo is a few tens of megapixels; past this it is refused before it is decoded
READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
               Image.DecompressionBombWarning)


def open_image(path: str | Path) -> Image.Image:
    """The image, lazily (header only), with Pillow's decompression-bomb warning made an error. Only a regular file is
    opened: a FIFO named x.png would block the read forever, a device would never end."""
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise UsageError("not a regular file (a pipe, socket or device?): not read", str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's warning text must not leak
        image = Image.open(path)
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise UsageError(f"image too large: {image.width}x{image.height} pixels (limit {MAX_PIXELS:,} pixels; "
                         f"a decompression bomb?)", str(path))
    return image


def unreadable(path: str | Path, error: Exception) -> UsageError:
    """One line for a picture that could not be read (READ_ERRORS)."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return UsageError("image too large (a decompression bomb?)", str(path))
    return UsageError(f"not an image this tool can read ({type(error).__name__}: {one_line(error, 80)})", str(path))


SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}


def eight_bit(image: Image.Image) -> Image.Image:
    """The picture in a mode whose conversion to L or RGB keeps what it shows: 16-bit (and 32-bit integer) grey is
    scaled to 0-255, not clipped at 255; a palette with per-entry transparency goes through RGBA, as Pillow asks."""
    if image.mode in SIXTEEN_BIT or image.mode == "I":
        pixels = np.asarray(image).astype(np.float64)
        full = 65535.0 if image.mode in SIXTEEN_BIT or pixels.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(pixels * (255.0 / full)), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA")
    return image


def fit_image(image: Image.Image, shape) -> np.ndarray:
    """A decoded picture as uint8 (H, W, C) of `shape` (C, H, W): the one conversion folder datasets and predict share."""
    channels, height, width = shape
    image = eight_bit(image).convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image).reshape(height, width, channels)


def fit_stored(image: Image.Image, channels: int, side: int) -> np.ndarray:
    """A decoded picture as uint8 (side, side, channels): its short side resized to `side` (Pillow's resampling
    averages when it shrinks), then its centre cropped square. How a folder of photos is stored (data: {store: N})."""
    image = eight_bit(image).convert("L" if channels == 1 else "RGB")
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - side) // 2, (height - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side))).reshape(side, side, channels)

