"""The curves of a run as PNG files, and one self-contained HTML report: curves, the metrics of
every validation, the best checkpoints, and LR / SR / GT comparisons with a slider."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from basicsr_lite.report.charts import line_chart, wants_log_scale
from basicsr_lite.report.run_data import RunData
from basicsr_lite.utils.files import atomic_write

PANEL_GAP = 4  # pixels between the LR, SR and GT panels of a TensorBoard triplet


def chart_specs(data: RunData) -> list[tuple[str, str, dict]]:
    """(file stem, title, series) of every chart the run's scalars make."""
    specs = []

    def group(stem: str, title: str, tags: list[str], scale: float = 1.0) -> None:
        series = {t.split('/', 1)[1]: [(x, y * scale) for x, y in data.scalars[t]] for t in tags}
        if series:
            specs.append((stem, title, series))

    group('losses', 'losses', data.tags('losses/'))
    named = [t for t in data.tags('lr/') if not t.startswith('lr/group_')]
    group('learning_rate', 'learning rate', named or data.tags('lr/'))
    datasets = sorted({t.split('/')[1] for t in data.tags('metrics/')})
    for dataset in datasets:
        for tag in data.tags(f'metrics/{dataset}/'):
            metric = tag.rsplit('/', 1)[1]
            group(f'metric_{dataset}_{metric}', f'{metric} on {dataset}', [tag])
    group('data_wait', 'data wait (% of iteration time)', data.tags('perf/data_wait_share'), 100)
    group('grad_norm', 'gradient norm', data.tags('grad_norm/'))
    group('cpu', 'CPU (%, 100 = one core)', data.tags('system/cpu_percent'))
    group('memory', 'memory (MB)', [t for t in data.tags('system/') if t.endswith('_mb')])
    return specs


def write_charts(data: RunData, out: Path) -> list[tuple[str, Path]]:
    """One PNG per chart in ``out``; returns (title, path) of each."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, title, series in chart_specs(data):
        image = line_chart(series, title, log_y=stem == 'losses' and wants_log_scale(series))
        path = out / f'{stem}.png'
        ok, encoded = cv2.imencode('.png', image)
        atomic_write(path, lambda f, e=encoded: f.write(e.tobytes()))
        written.append((title, path))
    return written


def split_triplet(png: bytes) -> dict[str, bytes]:
    """The LR, SR (and GT) panels of a ``ValidationImages`` triplet, each as PNG bytes."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    width = image.shape[1]
    names = ['LR', 'SR', 'GT']
    for count in (3, 2):
        panel = (width - (count - 1) * PANEL_GAP) / count
        if panel.is_integer():
            break
    panel = int(panel)
    panels = {}
    for i in range(count):
        left = i * (panel + PANEL_GAP)
        panels[names[i]] = cv2.imencode('.png', image[:, left:left + panel])[1].tobytes()
    return panels


def data_uri(png: bytes) -> str:
    return 'data:image/png;base64,' + base64.b64encode(png).decode()


STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
.charts img { margin: 4px; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td.best { font-weight: bold; background: #e6f4e6; }
.triplet img, .compare img { image-rendering: pixelated; width: 256px; }
.compare { position: relative; display: inline-block; }
.compare .overlay { position: absolute; top: 0; left: 0; overflow: hidden; height: 100%;
  border-right: 2px solid #fff; }
.compare .overlay img { max-width: none; }
figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top; }
"""

SLIDER_SCRIPT = """
document.querySelectorAll('.compare').forEach(function (box) {
  var overlay = box.querySelector('.overlay');
  var slider = box.parentNode.querySelector('input[type=range]');
  var width = box.querySelector('img').getBoundingClientRect().width;
  overlay.querySelector('img').style.width = width + 'px';
  function move() { overlay.style.width = (slider.value / 100 * width) + 'px'; }
  slider.addEventListener('input', move);
  move();
});
document.body.dataset.sliders = document.querySelectorAll('.compare').length;
"""


def metric_table(data: RunData, better: dict[str, str]) -> str:
    tags = data.tags('metrics/')
    if not tags:
        return '<p>No validation metrics were recorded.</p>'
    iterations = sorted({it for t in tags for it, _ in data.scalars[t]})
    best = {}
    for tag in tags:
        values = [v for _, v in data.scalars[tag]]
        lower = better.get(tag.rsplit('/', 1)[1]) == 'lower'
        best[tag] = min(values) if lower else max(values)
    head = ''.join(f'<th>{html.escape(t[len("metrics/"):])}</th>' for t in tags)
    rows = []
    for it in iterations:
        cells = []
        for tag in tags:
            value = dict(data.scalars[tag]).get(it)
            css = ' class="best"' if value is not None and value == best[tag] else ''
            cells.append(f'<td{css}>{"" if value is None else f"{value:.4f}"}</td>')
        rows.append(f'<tr><th>{it}</th>{"".join(cells)}</tr>')
    return f'<table><tr><th>iteration</th>{head}</tr>{"".join(rows)}</table>'


def best_section(data: RunData) -> str:
    if not data.best:
        return '<p>No best checkpoints (logger.keep_best_checkpoints) were kept.</p>'
    parts = []
    for summary in data.best:
        items = ''.join(f"<li>iter {e['iter']}: {e['value']:.4f} "
                        f"{html.escape(e.get('file') or '')}</li>" for e in summary['best'])
        parts.append(f"<p>{html.escape(summary['metric'])} on {html.escape(summary['dataset'])} "
                     f"({summary['better']} is better), best {summary['k']}:</p><ol>{items}</ol>")
    return ''.join(parts)


def comparisons(data: RunData) -> str:
    if not data.images:
        return ('<p>No validation images: set <code>val.tb_images</code> (with '
                '<code>logger.use_tb_logger</code>) to record LR / SR / GT triplets.</p>')
    figures = []
    for tag, (step, png) in sorted(data.images.items()):
        panels = split_triplet(png)
        row = ''.join(f'<figure><img src="{data_uri(p)}" alt="{k}"><figcaption>{k}</figcaption>'
                      f'</figure>' for k, p in panels.items())
        swipe = ''
        if 'GT' in panels:
            swipe = (f'<figure><div class="compare"><img src="{data_uri(panels["GT"])}" alt="GT">'
                     f'<div class="overlay"><img src="{data_uri(panels["SR"])}" alt="SR"></div>'
                     f'</div><br><input type="range" min="0" max="100" value="50" '
                     f'aria-label="SR | GT"><figcaption>SR (left) | GT (right)</figcaption>'
                     f'</figure>')
        figures.append(f'<h3>{html.escape(tag.split("/", 1)[1])} (iteration {step})</h3>'
                       f'<div class="triplet">{row}{swipe}</div>')
    return ''.join(figures)


def write_report(data: RunData, charts: list[tuple[str, Path]], path: Path,
                 better: dict[str, str] | None = None) -> None:
    """``path``: one HTML file with everything embedded (it can be mailed or archived)."""
    last = max((s[-1][0] for s in data.scalars.values() if s), default=0)
    chart_html = ''.join(f'<img src="{data_uri(p.read_bytes())}" alt="{html.escape(t)}">'
                         for t, p in charts)
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(data.name)}'
            f'</title><style>{STYLE}</style></head><body>'
            f'<h1>{html.escape(data.name)}</h1><p>Last iteration {last}; read from the '
            f'{data.source} records.</p>'
            f'<h2>Curves</h2><div class="charts">{chart_html}</div>'
            f'<h2>Validation metrics</h2>{metric_table(data, better or {})}'
            f'<h2>Best checkpoints</h2>{best_section(data)}'
            f'<h2>Images</h2>{comparisons(data)}'
            f'<script>{SLIDER_SCRIPT}</script></body></html>')
    atomic_write(path, lambda f: f.write(page.encode()))
