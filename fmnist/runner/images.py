"""Turn a user's picture (photo, scan, PNG) into a 28x28 Fashion-MNIST-like image: light object on black."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UsageError

SIZE = 28
MAX_PIXELS = 50_000_000  # a photo is a few tens of megapixels; past this it is refused before it is decoded


def load_image(path: str | Path, channels: int = 1) -> torch.Tensor:
    """(C, 28, 28) uint8: greyscale, inverted when the background is light, fitted and centred like the dataset."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's warning text must not leak
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise UsageError(f"image too large: {opened.width}x{opened.height} pixels "
                                     f"(limit {MAX_PIXELS:,} pixels; a decompression bomb?)", str(path))
                image = opened.convert("L")
    except FileNotFoundError:
        raise UsageError("no such image file", str(path)) from None
    except IsADirectoryError:
        raise UsageError("is a folder, not an image", str(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UsageError("image too large (a decompression bomb?)", str(path)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UsageError(f"not an image this tool can read ({type(error).__name__})", str(path)) from None
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # photos are dark-on-light; the dataset is light-on-black
        image = ImageOps.invert(image)
    image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (SIZE, SIZE), 0)
    canvas.paste(image, ((SIZE - image.width) // 2, (SIZE - image.height) // 2))
    tensor = torch.from_numpy(np.asarray(canvas).copy()).unsqueeze(0)
    return tensor.expand(channels, SIZE, SIZE).contiguous()
