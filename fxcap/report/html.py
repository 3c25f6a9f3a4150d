"""A self-contained HTML page: inline CSS, images and audio embedded as base64 ``data:`` URIs.

Nothing is fetched when the page is opened (no scripts, fonts or style sheets from elsewhere), so
the single file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import soundfile as sf

CSS = """
:root { --fg: #1d2430; --muted: #5b6472; --line: #d9dee5; --band: #f5f7fa; --accent: #2b6cb0; --best: #e3f4e1; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 32px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; font-size: 14px; white-space: nowrap; }
main { max-width: 1280px; padding: 8px 32px 48px; }
section { margin-top: 28px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 20px 0 8px; }
p.lead { color: var(--muted); margin-top: 0; }
p.missing { background: #fff8e6; border-left: 4px solid #e0a800; padding: 8px 12px; }
figure { margin: 8px 0 16px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: var(--band); font-weight: 600; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fbfcfd; }
td.best, tr:nth-child(even) td.best { background: var(--best); font-weight: 700; }
td.failed { color: #b42318; font-weight: 600; }
table.facts td:first-child { text-align: left; color: var(--muted); }
table.facts td { text-align: left; white-space: normal; }
.players { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card h3 { margin: 0 0 8px; font-size: 15px; }
.dry { max-width: 560px; margin-bottom: 12px; }
.clip { display: grid; grid-template-columns: 150px 1fr; align-items: center; gap: 8px; margin: 4px 0; }
.clip span { font-size: 13px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.clip audio { width: 100%; height: 32px; }
ul.notes li { margin: 4px 0; }
"""


def data_uri(mime: str, payload: bytes) -> str:
    """``data:<mime>;base64,<payload>``."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV bytes of ``audio`` (clipped to [-1, 1]: scale it first if it is louder)."""
    data = np.clip(np.nan_to_num(np.asarray(audio, dtype=np.float64)), -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, data, int(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Cell:
    """A table cell: text (escaped), optional CSS classes."""

    text: str
    classes: str = ""


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]], text_columns: int = 1, css: str = "") -> str:
    """An HTML table (no header row when ``headers`` is None); the first ``text_columns`` columns are
    left-aligned. Cells may be :class:`Cell`."""

    def cell(tag: str, value: Any, index: int) -> str:
        classes = ["text"] if index < text_columns else []
        if isinstance(value, Cell):
            classes += value.classes.split()
            value = value.text
        attr = f' class="{" ".join(classes)}"' if classes else ""
        return f"<{tag}{attr}>{esc(value)}</{tag}>"

    head = "<thead><tr>" + "".join(cell("th", h, i) for i, h in enumerate(headers)) + "</tr></thead>" if headers is not None else ""
    body = "\n".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(row)) + "</tr>" for row in rows)
    klass = f' class="{css}"' if css else ""
    return f'<div class="scroll"><table{klass}>{head}<tbody>\n{body}\n</tbody></table></div>'


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """An embedded PNG with alt text and an optional caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri("image/png", png)}" alt="{esc(alt)}">{cap}</figure>'


def audio_player(wav: bytes, label: str) -> str:
    """A labelled ``<audio controls>`` element with the WAV embedded."""
    return (f'<div class="clip"><span title="{esc(label)}">{esc(label)}</span>'
            f'<audio controls preload="metadata" src="{data_uri("audio/wav", wav)}"></audio></div>')


def missing(message: str) -> str:
    """A highlighted paragraph saying what is missing and how to get it."""
    return f'<p class="missing">{esc(message)}</p>'


def paragraph(text: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f"<p{klass}>{esc(text)}</p>"


@dataclass
class Section:
    """One section of the page: ``id`` (anchor), title and body HTML."""

    id: str
    title: str
    body: str


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole HTML document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{esc(s.id)}">\n<h2>{esc(s.title)}</h2>\n{s.body}\n</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
