"""A self-contained HTML report: sections of text, tables and matplotlib figures, one file.

Figures are PNGs embedded as data URIs, so the page opens anywhere (a copied file, an artifact store's
viewer) without its directory; each figure is also written beside the page as `<name>.png` for slides
and issues. No JavaScript, no external style sheet.

    page = Report("HeMix run 2026-12-06")
    page.section("Learning curves", "what it shows")
    page.figure("learning_curves", fig)            # a matplotlib Figure, closed after rendering
    page.table(["slice", "AUC"], [["all", "0.8268"]])
    page.write("runs/demo/report")                 # -> runs/demo/report/index.html, learning_curves.png
"""
from __future__ import annotations

import base64
import html
import io
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to PNG only
import matplotlib.pyplot as plt  # noqa: E402

PAGE = "index.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; } img { max-width: 100%; } .note { color: #555; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b7f3b; font-weight: bold; }
"""


class Report:
  """An HTML page built section by section; `write` renders it with its figures."""

  def __init__(self, title: str):
    self.title = title
    self.parts: list[str] = []
    self.figures: dict[str, bytes] = {}

  def section(self, title: str, text: str = "") -> None:
    self.parts.append(f"<h2>{html.escape(title)}</h2>")
    if text:
      self.text(text)

  def text(self, text: str, css_class: str = "") -> None:
    attribute = f' class="{css_class}"' if css_class else ""
    self.parts.append(f"<p{attribute}>{html.escape(text)}</p>")

  def table(self, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

  def figure(self, name: str, fig, caption: str = "") -> None:
    """Renders `fig` to PNG (and closes it); `name` is its file name beside the page and its alt text."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    if name in self.figures:
      raise ValueError(f"two figures named {name}")
    self.figures[name] = buffer.getvalue()
    data = base64.b64encode(self.figures[name]).decode()
    self.parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                      + (f"<figcaption class=\"note\">{html.escape(caption)}</figcaption>" if caption else "")
                      + "</figure>")

  def html(self) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
            f"</title><style>{_STYLE}</style></head>\n<body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(self.parts) + "\n</body></html>\n")

  def write(self, directory: str) -> str:
    """Writes `index.html` and the figures' PNGs into `directory` (created; local or any file system
    TensorFlow reads, e.g. gs://); returns the page's path. The page is written last, through a
    temporary name: a reader never sees half a page."""
    from tensorflow.io import gfile
    gfile.makedirs(directory)
    for name, png in self.figures.items():
      with gfile.GFile(os.path.join(directory, f"{name}.png"), "wb") as f:
        f.write(png)
    path = os.path.join(directory, PAGE)
    with gfile.GFile(path + ".tmp", "w") as f:
      f.write(self.html())
    gfile.rename(path + ".tmp", path, overwrite=True)
    return path


def _cell(value) -> str:
  if value is None:
    return "–"
  if isinstance(value, float):
    return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
  if isinstance(value, int) and not isinstance(value, bool):
    return f"{value:,}"
  return str(value)
