"""Turn a user's picture (photo, scan, PNG) into the image a run's model takes: for the MNIST family a 28x28
dataset-like image (light object on black, centred) converted like the training data; for other data, the
picture resized to the input as a folder dataset's images are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..datasets.images import READ_ERRORS, eight_bit, fit_image, fit_stored, open_image, unreadable
from ..errors import UsageError

SIZE = 28


def load_image(path: str | Path, shape=(1, SIZE, SIZE), light_on_black: bool = True,
               stored: int | None = None) -> torch.Tensor:
    """(C, H, W) uint8 for a model with input `shape`; `stored`: the run's images were stored at that side and
    judged by their centre view, so this one is too."""
    image = _read(path)
    if stored is not None:
        from .augment import centre_view

        square = torch.from_numpy(fit_stored(image, shape[0], stored).copy()).permute(2, 0, 1)[None]
        return centre_view(square, (shape[1], shape[2]))[0].contiguous()
    if not light_on_black:
        return torch.from_numpy(fit_image(image, shape).copy()).permute(2, 0, 1).contiguous()
    from ..datasets.convert import convert_images

    dataset_like = _dataset_like(eight_bit(image).convert("L")).unsqueeze(0)
    return convert_images(dataset_like, shape[0], tuple(shape[1:]))[0]


def _read(path: str | Path) -> Image.Image:
    """The decoded picture, or one line saying why not."""
    try:
        with open_image(path) as opened:
            opened.load()
            return opened.copy()
    except FileNotFoundError:
        raise UsageError("no such image file", str(path)) from None
    except IsADirectoryError:
        raise UsageError("is a folder, not an image", str(path)) from None
    except READ_ERRORS as error:
        raise unreadable(path, error) from None


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
