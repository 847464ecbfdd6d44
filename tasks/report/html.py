"""HTML building blocks for self-contained report pages.

A report is mailed around, attached to tickets and opened years later from a file, so a
page must need nothing but itself: CSS is inline, plots are ``data:`` URIs, there is no
JavaScript, and a Content-Security-Policy forbids loading anything else. Every value that
comes from a store (model names, detector specs, prompts) is untrusted text: it is escaped
on the way in unless it is already :class:`Html` built by these functions, so no caller
has to remember to escape.
"""

from __future__ import annotations

import base64
import html as _html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CELL_CHARS = 120
NOWRAP_CHARS = 32
EMPTY = "–"

Formatter = Callable[[Any], str]


class Html(str):
    """Text that is already markup: composed verbatim, never escaped again."""


def esc(value: object) -> Html:
    """Escape ``value`` for HTML text or a quoted attribute (``Html`` passes through)."""
    if isinstance(value, Html):
        return value
    return Html(_html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(sep.join(esc(p) for p in parts))


def element(name: str, *content: object, cls: str | None = None, **attrs: object) -> Html:
    """``<name class=… attrs…>content</name>``; attribute values and text are escaped."""
    pairs = ([("class", cls)] if cls else []) + [
        (k.rstrip("_").replace("_", "-"), v) for k, v in attrs.items() if v is not None
    ]
    rendered = "".join(
        f' {k}="{_html.escape(str(v), quote=True)}"' for k, v in pairs
    )  # always: no markup in attributes
    return Html(f"<{name}{rendered}>{join(content)}</{name}>")


def slug(text: str) -> str:
    """An anchor id from a heading: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


# ---------------------------------------------------------------- values


def public_url(url: str) -> str:
    """A store URL safe to print: user, password, query and fragment removed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def fmt_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def fmt_bytes(size: int) -> str:
    step = 1024.0
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < step or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= step
    return f"{size} B"


def truncate(text: str, limit: int = MAX_CELL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _auto_float(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def fmt(value: Any, spec: str | Formatter | None = None) -> str:
    """One cell's text: missing values as ``–``, numbers with ``spec`` (a format spec or
    a function), datetimes in UTC, bytes as their size, containers as compact JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    if isinstance(value, Html):
        return value
    if callable(spec):
        return spec(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return format(value, spec) if spec else f"{value:,}"
    if isinstance(value, float):
        return format(value, spec) if spec else _auto_float(value)
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{fmt_bytes(len(value))}>"
    if isinstance(value, (list, tuple, dict)):
        return truncate(json.dumps(value, ensure_ascii=False, default=str))
    return truncate(str(value))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Column:
    """One table column: the row key, its heading, how to format it, and its alignment."""

    key: str
    label: str | None = None
    spec: str | Formatter | None = None
    numeric: bool | None = None  # None: right-align when the values are numbers

    @property
    def heading(self) -> str:
        return self.label if self.label is not None else self.key


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column | str] | None = None,
    *,
    caption: str | None = None,
    empty: str = "no rows",
) -> Html:
    """A readable table; numeric columns are right-aligned with tabular digits."""
    cols = [c if isinstance(c, Column) else Column(c) for c in (columns or (list(rows[0]) if rows else []))]
    if not rows:
        return note(empty)
    numeric = {c.key: c.numeric if c.numeric is not None else any(is_number(r.get(c.key)) for r in rows) for c in cols}
    head = element("tr", *[element("th", c.heading, cls="num" if numeric[c.key] else None) for c in cols])
    body = []
    for r in rows:
        cells = []
        for c in cols:
            value = r.get(c.key)
            text = fmt(value, c.spec)
            full = str(value) if isinstance(value, str) and len(value) > MAX_CELL_CHARS else None
            # short values (names, ids, dates) stay on one line; only long text wraps
            cls = (
                "num" if numeric[c.key] else "nw" if len(text) <= NOWRAP_CHARS and not isinstance(text, Html) else None
            )
            cells.append(element("td", text, cls=cls, title=full))
        body.append(element("tr", *cells))
    parts: list[object] = [element("caption", caption)] if caption else []
    parts += [element("thead", head), element("tbody", *body)]
    return element("div", element("table", *parts), cls="table-wrap")


Figure = tuple[str, Any] | tuple[str, Any, str]  # (label, value[, hint under the value])


def key_figures(items: Sequence[Figure]) -> Html:
    """A row of cards with the handful of numbers a reader looks for first."""
    cards = []
    for item in items:
        label, value, *rest = item
        hint = rest[0] if rest else None
        text = value if isinstance(value, Html) else fmt(value)
        size = " long" if len(text) > 24 else ""
        parts: list[object] = [element("div", label, cls="kf-label"), element("div", text, cls=f"kf-value{size}")]
        if hint:
            parts.append(element("div", hint, cls="kf-hint"))
        cards.append(element("div", *parts, cls="kf"))
    return element("div", *cards, cls="key-figures")


def definitions(pairs: Sequence[tuple[str, Any]]) -> Html:
    """Label/value pairs (run parameters, manifest attrs)."""
    items = []
    for label, value in pairs:
        items.append(element("dt", label))
        items.append(element("dd", value if isinstance(value, Html) else fmt(value)))
    return element("dl", *items, cls="defs")


def image_png(data: bytes, alt: str, caption: str | None = None) -> Html:
    """A PNG embedded as a ``data:`` URI; anything that is not a PNG becomes a note."""
    if not data.startswith(PNG_SIGNATURE):
        return note(f"{alt}: not a PNG file ({fmt_bytes(len(data))}), not shown")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    parts: list[object] = [Html(f'<img src="{uri}" alt="{esc(alt)}">')]
    if caption:
        parts.append(element("figcaption", caption))
    return element("figure", *parts)


def stacked(main: object, small: object) -> Html:
    """A cell value with a detail in small print underneath (an interval, a date)."""
    return join([element("span", main, cls="nw"), element("span", small, cls="sub")])


def meta_line(pairs: Sequence[tuple[str, Any]]) -> Html:
    """The page header's facts, on one wrapping line."""
    return element(
        "div",
        *[element("span", element("span", label, cls="k"), fmt(value), cls="item") for label, value in pairs],
        cls="meta",
    )


def note(text: object) -> Html:
    return element("p", text, cls="note")


def heading(level: int, text: object) -> Html:
    return element(f"h{level}", text)


@dataclass(frozen=True)
class Section:
    """One titled part of a page; the page lists the titles in its navigation."""

    title: str
    body: Html
    anchor: str = ""

    @property
    def id(self) -> str:
        return self.anchor or slug(self.title)


def page(title: str, subtitle: str, meta: Sequence[tuple[str, Any]], sections: Sequence[Section]) -> str:
    """A complete HTML document: header with ``meta``, a navigation line, the sections."""
    used: dict[str, int] = {}
    anchored = []
    for s in sections:
        n = used.get(s.id, 0)
        used[s.id] = n + 1
        anchored.append((s, s.id if n == 0 else f"{s.id}-{n + 1}"))
    nav = (
        element("nav", *[element("a", s.title, href=f"#{anchor}") for s, anchor in anchored])
        if len(anchored) > 1
        else Html("")
    )
    header = element(
        "header",
        element(
            "div",
            element("div", "trustflow report", cls="brand"),
            element("h1", title),
            element("div", subtitle, cls="subtitle"),
            cls="wrap",
        ),
        element("div", meta_line(meta), cls="wrap"),
    )
    body = [element("section", element("h2", s.title), s.body, id=anchor) for s, anchor in anchored]
    main = element("main", nav, *body, cls="wrap")
    footer = element(
        "footer", element("div", f"generated by trustflow · self-contained page ({len(anchored)} sections)", cls="wrap")
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{header}{main}{footer}</body></html>\n"
    )


CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#d9e2ec;--band:#102a43;--accent:#2f80ed;--bg:#f5f7fa;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif}
.wrap{max-width:1200px;margin:0 auto;padding:0 28px}
header{background:var(--band);color:#f0f4f8;padding:18px 0 14px}
header .brand{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:#9fb3c8}
header h1{margin:2px 0 2px;font-size:24px;font-weight:600;word-break:break-all}
header .subtitle{color:#bcccdc;margin-bottom:8px}
header .meta{display:flex;flex-wrap:wrap;gap:4px 22px;font-size:13px;color:#d9e2ec}
header .meta .k{color:#9fb3c8;margin-right:6px}
nav{display:flex;flex-wrap:wrap;gap:6px 16px;padding:14px 0 4px;font-size:13px}
nav a{color:var(--accent);text-decoration:none}
main section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px 10px;margin:16px 0}
h2{font-size:18px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 8px;color:#334e68}
dl.defs{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0 12px}
dl.defs dt{color:var(--muted)}
dl.defs dd{margin:0;word-break:break-all}
.key-figures{display:flex;flex-wrap:wrap;gap:12px;margin:4px 0 14px}
.kf{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px;background:#fbfcfe}
.kf-label{font-size:12px;color:var(--muted)}
.kf-value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;word-break:break-all}
.kf-value.long{font-size:15px;padding-top:4px}
.kf-hint{font-size:12px;color:var(--muted)}
.table-wrap{overflow-x:auto;margin:6px 0 14px}
table{border-collapse:collapse;font-size:13px;min-width:40%}
caption{text-align:left;color:var(--muted);padding:0 0 4px;font-size:12px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600}
td{max-width:460px;overflow-wrap:anywhere}
tbody tr:nth-child(even){background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
.nw{white-space:nowrap}
.sub{display:block;font-size:11px;color:var(--muted);white-space:nowrap}
figure{margin:8px 0 16px;display:inline-block;vertical-align:top;margin-right:18px}
figure img{max-width:100%;border:1px solid var(--line);border-radius:4px;background:#fff}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.note{color:var(--muted);font-style:italic}
footer{color:var(--muted);font-size:12px;padding:8px 0 24px}
@media print{body{background:#fff}main section{break-inside:avoid;border:none}}
"""
