"""Notebook reports reference nothing outside themselves: no script, stylesheet, font or image
from a CDN or from the server, so they render offline and under a strict Content-Security-Policy."""

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from himalia.execution.report import render_report

#: A 1x1 PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
#: Attributes that name what a page loads or submits to (``a href`` only navigates when clicked).
LOADING_ATTRIBUTES = {"src", "srcset", "href", "data", "poster", "action", "formaction", "background", "xlink:href"}
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
CSS_REFERENCE = re.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\")\s;]+)|url\(\s*['\"]?([^'\")]+)", re.I)


def self_contained(reference: str) -> bool:
    """Whether loading ``reference`` needs nothing outside the document: inline data or a fragment."""
    return reference.strip().lower().startswith(("data:", "#"))


class References(HTMLParser):
    """Every reference the document would load: each tag's loading attributes, and the ``url()``
    and ``@import`` of its stylesheets and ``style`` attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []  # tag, attribute, reference
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None or (tag == "a" and name == "href"):
                continue
            if name in LOADING_ATTRIBUTES:
                for candidate in re.split(r",\s+", value) if name == "srcset" else [value]:
                    self.found.append((tag, name, candidate.strip().split(" ")[0]))
            elif name == "style":
                self.found += [(tag, "style", ref) for ref in css_references(value)]

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += [("style", "text", ref) for ref in css_references(data)]


def css_references(css: str) -> list[str]:
    return [first or second for first, second in CSS_REFERENCE.findall(CSS_COMMENT.sub("", css))]


def outside_references(html: str) -> list[tuple[str, str, str]]:
    parser = References()
    parser.feed(html)
    return [found for found in parser.found if not self_contained(found[2])]


def test_the_checker_finds_what_a_page_would_load() -> None:
    page = (
        '<script src="https://cdn.example/require.js"></script><link rel="stylesheet" href="/static/x.css">'
        '<img srcset="data:image/png;base64,AA 1x, pic.png 2x"><a href="https://docs.example">docs</a>'
        "<div style=\"background: url('https://img.example/b.png')\"></div>"
        "<style>/* url(https://comment.example) */ @import 'https://fonts.example/f.css'; "
        "p { background: url(data:image/png;base64,AA) }</style>"
    )
    assert outside_references(page) == [
        ("script", "src", "https://cdn.example/require.js"),
        ("link", "href", "/static/x.css"),
        ("img", "srcset", "pic.png"),
        ("div", "style", "https://img.example/b.png"),
        ("style", "text", "https://fonts.example/f.css"),
    ]


def executed_notebook(folder: Path) -> Path:
    """A notebook as papermill leaves it: markdown with a formula and a local image, a printed
    line and a plot (an image/png output)."""
    (folder / "chart.png").write_bytes(base64.b64decode(PIXEL))
    node = new_notebook(
        cells=[
            new_markdown_cell("# Scores\n\nThe threshold $t^2$ and ![chart](chart.png)"),
            new_code_cell(
                "print('scored 300 rows')",
                outputs=[
                    new_output("stream", name="stdout", text="scored 300 rows\n"),
                    new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
                ],
            ),
        ]
    )
    path = folder / "executed.ipynb"
    nbformat.write(node, path)
    return path


def test_reports_reference_nothing_outside_themselves(tmp_path: Path) -> None:
    for hide_code in (False, True):
        html = render_report(executed_notebook(tmp_path), hide_code)
        assert outside_references(html) == [], hide_code
        assert "<script" not in html  # nothing to run: require.js, MathJax, Mermaid and widgets are left out
        assert "scored 300 rows" in html and "data:image/png;base64," in html
        assert html.count("scored 300 rows") == (1 if hide_code else 2)  # the output, and the code unless hidden
    assert "![chart](chart.png)" not in html and 'src="chart.png"' not in html  # embedded, not linked
