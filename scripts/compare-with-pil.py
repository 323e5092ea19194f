"""torchvision's PIL pipeline, Resize(size) + CenterCrop(size), on the files listed, compared with soup's pixels.

Usage: compare-with-pil.py FILES.txt OURS.npy PIL_OUT.npy bilinear|bicubic SIZE
Prints one line of statistics; writes PIL's pixels to PIL_OUT.npy (uint8 [n, size, size, 3]).
torchvision applies exactly these PIL calls to PIL images, so torchvision itself is not needed.
"""
import sys

import numpy as np
from PIL import Image


def torchvision_resize_crop(image, size, resample):
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_width, new_height = (size, new_long) if width <= height else (new_long, size)
    image = image.resize((new_width, new_height), resample)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def main(files_txt, ours_npy, pil_npy, interpolation, size):
    size = int(size)
    resample = Image.BILINEAR if interpolation == "bilinear" else Image.BICUBIC
    with open(files_txt) as f:
        files = f.read().split("\n")
    pil = np.stack([np.asarray(torchvision_resize_crop(Image.open(name).convert("RGB"), size, resample)) for name in files])
    np.save(pil_npy, pil)
    ours = np.load(ours_npy)
    difference = np.abs(ours.astype(np.int16) - pil.astype(np.int16))
    print(
        f"mean |soup - PIL| {difference.mean():.3f} of 255, max {difference.max()}, "
        f"{(difference == 0).mean() * 100:.1f}% of values equal, {(difference <= 1).mean() * 100:.1f}% within 1"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
