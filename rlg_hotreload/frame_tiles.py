"""One frame from several: the compare view's tiles (one per slot), each labelled in its corner.

Why labels drawn into the pixels: the MJPEG stream (and anything that saves it) then says which tile is
which without the page; the page repeats the labels as text under the picture. Pillow (the stream extra)
is imported only when a frame is tiled, i.e. only while someone watches.
"""

from typing import List, Optional, Sequence

import numpy as np


def tile_frames(frames: Sequence[Optional[np.ndarray]], labels: Sequence[str], cols: int) -> Optional[np.ndarray]:
    """``frames`` (HxWx3 uint8; None = nothing to show: a black tile) in a grid of ``cols`` columns, row
    by row, each with its label; None when no frame at all."""
    shown = [f for f in frames if f is not None]
    if not shown:
        return None
    h, w = shown[0].shape[:2]
    rows = (len(frames) + cols - 1) // cols
    out = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for k, f in enumerate(frames):
        if f is None or f.shape[:2] != (h, w):
            continue  # a tile of another size cannot be placed: left black
        r, c = divmod(k, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = f[..., :3]
    return _labelled(out, labels, cols, h, w)


def _labelled(img: np.ndarray, labels: Sequence[str], cols: int, h: int, w: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    pic = Image.fromarray(img)
    draw = ImageDraw.Draw(pic)
    boxes: List[tuple] = []
    for k, label in enumerate(labels):
        r, c = divmod(k, cols)
        x, y = c * w + 4, r * h + 3
        left, top, right, bottom = draw.textbbox((x, y), label)
        boxes.append((x, y, label))
        draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=(0, 0, 0))
    for x, y, label in boxes:
        draw.text((x, y), label, fill=(255, 255, 255))
    if cols > 1:  # a thin divider between columns
        for c in range(1, cols):
            draw.line(((c * w, 0), (c * w, img.shape[0])), fill=(40, 40, 40), width=1)
    return np.asarray(pic)
