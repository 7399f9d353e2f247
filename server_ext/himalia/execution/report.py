"""The HTML report of an executed notebook, rendered by the worker that ran it."""

from pathlib import Path


def render_report(executed: Path, hide_code: bool) -> str:
    """The report of the executed notebook at ``executed``, code cells hidden when asked."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    return body


def load_report_templates() -> None:
    """Export an empty notebook once: the first export loads nbconvert's templates (a second on a
    busy machine), which a step would otherwise pay after its deadline."""
    import nbformat
    from nbconvert import HTMLExporter

    HTMLExporter().from_notebook_node(nbformat.v4.new_notebook())
