"""Turn a user's picture (photo, scan, PNG) into the image a run's model takes: for the MNIST family a 28x28
dataset-like image (light object on black, centred) converted like the training data; for other data, the
picture resized to the input as a folder dataset's images are."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UsageError

SIZE = 28
MAX_PIXELS = 50_000_000  # a photo is a few tens of megapixels; past this it is refused before it is decoded


def fit_image(image: Image.Image, shape) -> np.ndarray:
    """A decoded picture as uint8 (H, W, C) of `shape` (C, H, W): the one conversion folder datasets and predict share."""
    channels, height, width = shape
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image).reshape(height, width, channels)


def load_image(path: str | Path, shape=(1, SIZE, SIZE), light_on_black: bool = True) -> torch.Tensor:
    """(C, H, W) uint8 for a model with input `shape`."""
    image = _read(path)
    if not light_on_black:
        return torch.from_numpy(fit_image(image, shape).copy()).permute(2, 0, 1).contiguous()
    from ..datasets.convert import convert_images

    dataset_like = _dataset_like(image.convert("L")).unsqueeze(0)
    return convert_images(dataset_like, shape[0], tuple(shape[1:]))[0]


def _read(path: str | Path) -> Image.Image:
    """The decoded picture, or one line saying why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's warning text must not leak
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise UsageError(f"image too large: {opened.width}x{opened.height} pixels "
                                     f"(limit {MAX_PIXELS:,} pixels; a decompression bomb?)", str(path))
                opened.load()
                image = opened.copy()
    except FileNotFoundError:
        raise UsageError("no such image file", str(path)) from None
    except IsADirectoryError:
        raise UsageError("is a folder, not an image", str(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UsageError("image too large (a decompression bomb?)", str(path)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UsageError(f"not an image this tool can read ({type(error).__name__})", str(path)) from None
    return image


def _dataset_like(image: Image.Image) -> torch.Tensor:
    """(1, 28, 28) uint8: greyscale, inverted when the background is light, fitted and centred like the dataset."""
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # photos are dark-on-light; the dataset is light-on-black
        image = ImageOps.invert(image)
    image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (SIZE, SIZE), 0)
    canvas.paste(image, ((SIZE - image.width) // 2, (SIZE - image.height) // 2))
    return torch.from_numpy(np.asarray(canvas).copy()).unsqueeze(0)
