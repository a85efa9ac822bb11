"""Line charts as PNG images, drawn with OpenCV (no plotting library needed)."""
from __future__ import annotations

import math

import cv2
import numpy as np

WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 34, 44
COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
          (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def label(value: float) -> str:
    return f'{value:.4g}' if abs(value) < 1e5 else f'{value:.2e}'


def line_chart(series: dict[str, list[tuple[int, float]]], title: str,
               log_y: bool = False) -> np.ndarray:
    """A BGR image of ``{name: [(iteration, value), ...]}``; ``log_y``: logarithmic values
    (non-positive values are left out)."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    cv2.putText(canvas, title, (LEFT, 22), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    points = {name: [(x, math.log10(y) if log_y else y) for x, y in values
                     if math.isfinite(y) and (y > 0 or not log_y)]
              for name, values in series.items()}
    points = {name: p for name, p in points.items() if p}
    box = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    cv2.rectangle(canvas, box[:2], box[2:], (0, 0, 0), 1)
    if not points:
        cv2.putText(canvas, 'no values', (LEFT + 10, TOP + 30), FONT, 0.5, (0, 0, 0), 1)
        return canvas
    xs = [x for p in points.values() for x, _ in p]
    ys = [y for p in points.values() for _, y in p]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def to_pixel(x: float, y: float) -> tuple[int, int]:
        px = box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0])
        py = box[3] - (y - y0) / (y1 - y0) * (box[3] - box[1])
        return round(px), round(py)

    grid = (225, 225, 225)
    for tick in nice_ticks(y0, y1):
        _, py = to_pixel(x0, tick)
        cv2.line(canvas, (box[0] + 1, py), (box[2] - 1, py), grid, 1)
        text = label(10 ** tick) if log_y else label(tick)
        cv2.putText(canvas, text, (4, py + 4), FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    for tick in nice_ticks(x0, x1):
        px, _ = to_pixel(tick, y0)
        cv2.line(canvas, (px, box[3]), (px, box[3] + 4), (0, 0, 0), 1)
        text = label(tick)
        cv2.putText(canvas, text, (px - 4 * len(text), box[3] + 18), FONT, 0.38, (60, 60, 60), 1,
                    cv2.LINE_AA)
    cv2.putText(canvas, 'iteration', (box[2] - 70, HEIGHT - 8), FONT, 0.4, (60, 60, 60), 1,
                cv2.LINE_AA)
    for i, (name, values) in enumerate(points.items()):
        color = COLORS[i % len(COLORS)]
        pixels = np.array([to_pixel(x, y) for x, y in values], np.int32)
        if len(pixels) == 1:
            cv2.circle(canvas, tuple(int(v) for v in pixels[0]), 3, color, -1, cv2.LINE_AA)
        else:
            cv2.polylines(canvas, [pixels], False, color, 2, cv2.LINE_AA)
        ly = TOP + 16 + 16 * i
        cv2.rectangle(canvas, (box[2] - 170, ly - 8), (box[2] - 160, ly + 2), color, -1)
        cv2.putText(canvas, name[-24:], (box[2] - 154, ly + 1), FONT, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return canvas


def wants_log_scale(series: dict[str, list[tuple[int, float]]]) -> bool:
    """Losses spanning more than two decades read better on a logarithmic axis."""
    values = [v for p in series.values() for _, v in p if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100
