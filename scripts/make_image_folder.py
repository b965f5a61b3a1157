"""Save real Fashion-MNIST images as a folder dataset (PNG files, one sub-folder per class), to train on a folder.

    python scripts/make_image_folder.py OUT [--split test] [--size 28] [--rgb] [--test-share 0.2] [--format png] [--limit N]

Takes the images of one published split (the 10,000 test images by default), converts them (resize, grey -> RGB),
and writes OUT/train/<class>/<n>.png and OUT/test/<class>/<n>.png, the test share stratified with a fixed seed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist.datasets.fashion_mnist import CLASS_NAMES, locate, read_dataset


def folder_name(name: str) -> str:
    return name.replace("/", "-")  # "T-shirt/top" cannot be a folder name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", choices=["train", "test"], default="test")
    parser.add_argument("--size", type=int, default=28, help="side in pixels (28: Fashion-MNIST's own, no resize)")
    parser.add_argument("--rgb", action="store_true")
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--format", choices=["png", "jpeg"], default="png")
    parser.add_argument("--limit", type=int, default=None, help="only the split's first N images (a quick folder)")
    args = parser.parse_args()
    arrays = read_dataset(locate())
    images, labels = arrays[f"{args.split}_images"][:args.limit], arrays[f"{args.split}_labels"][:args.limit]
    order = np.random.default_rng(0).permutation(len(labels))
    test = set()
    for label in range(len(CLASS_NAMES)):
        members = order[labels[order] == label]
        test.update(members[: int(round(len(members) * args.test_share))].tolist())
    for index, (pixels, label) in enumerate(zip(images, labels)):
        image = Image.fromarray(pixels, "L")
        if args.size != 28:
            image = image.resize((args.size, args.size), Image.Resampling.BILINEAR)
        if args.rgb:
            image = image.convert("RGB")
        folder = args.out / ("test" if index in test else "train") / folder_name(CLASS_NAMES[label])
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:05d}.{'jpg' if args.format == 'jpeg' else 'png'}")
    print(f"{len(labels):,} images -> {args.out} ({len(labels) - len(test):,} train / {len(test):,} test, "
          f"{args.size}x{args.size} {'RGB' if args.rgb else 'grey'} {args.format})")


if __name__ == "__main__":
    main()
