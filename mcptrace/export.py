"""Writing figures to HTML, PNG and SVG.

PNG and SVG go through kaleido (v1), which drives a system Chromium/Chrome found on the
PATH or at ``/usr/bin/chromium`` (Debian package ``chromium``); ``BROWSER_PATH`` overrides.
"""

from __future__ import annotations

import os

import plotly.graph_objects as go

from mcptrace.errors import MCPTraceError

FORMATS = {".html": "html", ".htm": "html", ".png": "png", ".svg": "svg"}


def write_figure(fig: go.Figure, path: str | os.PathLike, *, include_plotlyjs: bool | str = True,
                 width: int = 1400, height: int | None = None, scale: float = 1.0) -> str:
    """Write ``fig`` to ``path``; the format follows the extension (.html, .png, .svg).

    HTML is self-contained by default (``include_plotlyjs=True``; ``"cdn"`` links instead).
    Raises :class:`mcptrace.MCPTraceError` for an unknown extension or when no browser is
    available for PNG/SVG.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise MCPTraceError(f"{path}: unknown output format {ext or '(none)'}; use .html, .png or .svg")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "html":
        fig.write_html(path, include_plotlyjs=include_plotlyjs, full_html=True)
        return path
    try:
        fig.write_image(path, format=fmt, width=width, height=height or fig.layout.height or 600, scale=scale)
    except Exception as e:  # kaleido raises several classes when Chromium is missing
        if "browser" in str(e).lower() or "chrome" in str(e).lower():
            raise MCPTraceError(f"{path}: PNG/SVG export needs Chromium: apt-get install chromium ({e})") from e
        raise
    return path
