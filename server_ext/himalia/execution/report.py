"""The HTML report of an executed notebook, rendered by the worker that ran it.

Reports are read offline, attached to emails and shown under a strict Content-Security-Policy,
so they reference nothing outside themselves: nbconvert's ``lab`` template loads require.js,
MathJax and Mermaid from a CDN, which ``SELF_CONTAINED`` leaves out (formulas then show as
written), its stylesheets are inlined, and images are embedded as ``data:`` URLs. One exporter
is built per worker process: the first export loads the templates, which costs a second.
"""

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

#: The lab template without the blocks that load scripts from a CDN.
SELF_CONTAINED = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
TEMPLATE_FILE = "himalia-report.html.j2"


@cache
def report_exporter() -> "HTMLExporter":
    """The one exporter of this process, its templates loaded on first use."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        extra_loaders=[DictLoader({TEMPLATE_FILE: SELF_CONTAINED})],
        template_file=TEMPLATE_FILE,
        embed_images=True,
    )


def render_report(executed: Path, hide_code: bool) -> str:
    """The report of the executed notebook at ``executed``, code cells hidden when asked."""
    import nbformat

    exporter = report_exporter()
    exporter.exclude_input = exporter.exclude_input_prompt = hide_code
    # The folder is where embed_images finds the files that markdown cells show.
    resources = {"metadata": {"name": "Report", "path": str(executed.parent)}}
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4), resources=resources)
    return body


def load_report_templates() -> None:
    """Export a small notebook once: the first export loads nbconvert's templates, the code
    highlighter and the markdown renderer (a second on a busy machine), which a step would otherwise
    pay after its deadline; an empty notebook would leave the highlighter and markdown cold."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    cells = [
        new_markdown_cell("# Report"),
        new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")], execution_count=1),
    ]
    node = new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})
    report_exporter().from_notebook_node(nbformat.from_dict(node))
