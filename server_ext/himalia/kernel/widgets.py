"""What the kernel client shows in a notebook: ipywidgets in JupyterLab, HTML elsewhere.

ipywidgets rather than anywidget: every view here is a composition of the standard controls
(HTML, a progress bar, text and number fields, buttons) that JupyterLab's widget manager renders
as it is; anywidget earns its place for a front-end of one's own (an ES module), which none of
these needs, and would bring a second front-end runtime into every kernel.

Each view carries an HTML rendering of the same content as well (``text/html`` beside the
widget's own MIME type), which is what an exported notebook, nbviewer or a frontend without the
widget manager shows. The HTML is built here from the API's answers, every value escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Outcome and state colours, as the lab's panels use them.
COLOURS = {
    "OK": "#2e7d32",
    "WARNING": "#ed6c02",
    "ERROR": "#d32f2f",
    "EMPTY": "#757575",
    "succeeded": "#2e7d32",
    "warning": "#ed6c02",
    "failed": "#d32f2f",
    "aborted": "#757575",
    "skipped": "#757575",
    "queued": "#0277bd",
    "running": "#0277bd",
}
#: How many past values a metric's sparkline draws.
SPARK_POINTS = 30


def widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def badge(value: str) -> str:
    colour = COLOURS.get(value, "#757575")
    return (
        f'<span class="himalia-badge" style="background:{colour};color:#fff;border-radius:3px;'
        f'padding:0 4px;font-size:85%">{html.escape(value)}</span>'
    )


def plain(value: Any) -> str:
    """A metric value as the panels write it: numbers with at most 4 significant decimals."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "—"
    return str(value)


def sparkline(values: Sequence[float], width: int = 120, height: int = 24) -> str:
    """A metric's recent values as a small SVG line (nothing for fewer than two)."""
    points = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    path = " ".join(
        f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for index, value in enumerate(points)
    )
    return (
        f'<svg class="himalia-spark" width="{width}" height="{height}" role="img" '
        f'aria-label="last {len(points)} values"><polyline fill="none" stroke="#1976d2" '
        f'stroke-width="1.5" points="{path}"/></svg>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], label: str) -> str:
    head = "".join(f"<th style='text-align:left;padding:1px 8px 1px 0'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:1px 8px 1px 0'>{cell}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table aria-label='{html.escape(label)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dataset_html(summary: Mapping[str, Any]) -> str:
    """A dataset's card: where it lives, its columns, its last metric values with their recent
    history, its checks' last outcomes."""
    described, checks, history = summary["dataset"], summary["checks"], summary["history"]
    where = described.get("table") or described.get("path") or "query"
    parts = [
        f"<div class='himalia-dataset' data-dataset='{html.escape(described['name'])}'>",
        f"<h4 style='margin:0'>{html.escape(described['name'])} "
        f"<small style='color:#757575'>{html.escape(summary['project'])} · "
        f"{html.escape(described['connection'])}: {html.escape(str(where))}</small></h4>",
    ]
    if described.get("description"):
        parts.append(f"<p>{html.escape(described['description'])}</p>")
    columns = described.get("columns") or []
    parts.append(
        f"<details><summary>{len(columns)} columns</summary>"
        + _table(
            ["column", "type"],
            [[html.escape(c["name"]), html.escape(c["type"])] for c in columns],
            "Columns",
        )
        + "</details>"
    )
    if checks:
        rows = []
        for check in checks:
            last = check.get("last_result")
            rows.append(
                [
                    badge(last["outcome"]) if last else "<em>not run</em>",
                    html.escape(check["name"]),
                    html.escape(last["message"]) if last else "",
                ]
            )
        parts.append("<b>Checks</b>" + _table(["outcome", "check", "last result"], rows, "Checks"))
    if history:
        rows = [
            [html.escape(metric), html.escape(plain(values[-1])), sparkline(values[-SPARK_POINTS:])]
            for metric, values in sorted(history.items())
        ]
        parts.append("<b>Metrics</b>" + _table(["metric", "last value", "history"], rows, "Metrics"))
    parts.append("</div>")
    return "".join(parts)


def checks_html(dataset: str, run: Mapping[str, Any] | None, error: str | None = None) -> str:
    if error is not None:
        return f"<div class='himalia-checks'>{badge('ERROR')} {html.escape(error)}</div>"
    if run is None:
        return f"<div class='himalia-checks' role='status'>Running the checks of {html.escape(dataset)}…</div>"
    rows = [[badge(r["outcome"]), html.escape(r["check"]), html.escape(r["message"])] for r in run["results"]]
    return (
        f"<div class='himalia-checks' data-outcome='{html.escape(run['outcome'])}'>"
        f"Checks of {html.escape(dataset)}: {badge(run['outcome'])}"
        + _table(["outcome", "check", "message"], rows, "Check results")
        + "</div>"
    )


def run_html(run: Mapping[str, Any], link: str | None) -> str:
    steps = run.get("steps") or []
    done = sum(1 for s in steps if s["state"] not in ("pending", "running"))
    current = next((s["name"] for s in steps if s["state"] == "running"), None)
    opened = f" · <a href='{html.escape(link)}' target='_blank'>open the run</a>" if link else ""
    rows = [[badge(s["state"]), html.escape(s["name"]), html.escape(s.get("message") or "")] for s in steps]
    return (
        f"<div class='himalia-run' data-run='{run['id']}' data-state='{html.escape(run['state'])}'>"
        f"Run #{run['id']} of {html.escape(run['scenario'])}: {badge(run['state'])} "
        f"{done}/{len(steps)} steps{' · ' + html.escape(current) if current else ''}{opened}"
        + _table(["state", "step", "message"], rows, "Steps")
        + "</div>"
    )


class View:
    """One HTML rendering, as a widget where ipywidgets is installed, updated in place."""

    def __init__(self, content: str, actions: Mapping[str, Callable[[], str]] | None = None) -> None:
        """``actions``: buttons by label, each returning the view's new content (or raising to say why not)."""
        self.content = content
        self.widget: Any = None
        if widgets_available():
            import ipywidgets

            self.html = ipywidgets.HTML(value=content)
            buttons = []
            for label, action in (actions or {}).items():
                button = ipywidgets.Button(description=label)
                button.on_click(lambda _button, action=action: self._act(action))
                buttons.append(button)
            self.widget = ipywidgets.VBox([self.html, ipywidgets.HBox(buttons)]) if buttons else self.html

    def _act(self, action: Callable[[], str]) -> None:
        try:
            self.update(action())
        except Exception as error:  # the client's one sentence: shown where the person clicked
            self.update(f"{badge('ERROR')} {html.escape(str(error))}" + self.content)

    def update(self, content: str) -> None:
        self.content = content
        if self.widget is not None:
            self.html.value = content

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/html": self.content}
        if self.widget is not None:
            bundle = {**self.widget._repr_mimebundle_(include=include, exclude=exclude), **bundle}
        return bundle


def show(view: View) -> None:
    """Display ``view`` in the running IPython kernel, if any (a script shows nothing)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(view)


# -- the parameters form ----------------------------------------------------------------------------

#: The controls of each parameter type; other types are typed in as Python literals.
FIELD_TYPES = ("int", "float", "bool", "str")


class ParametersForm:
    """A form of a notebook's parameters, typed as scenario runs type them; **Apply** sets the
    values in the kernel (``namespace``) so the notebook can be tried with them before it is scheduled."""

    def __init__(
        self,
        parameters: Sequence[dict[str, Any]],
        namespace: dict[str, Any],
        check: Callable[[dict[str, Any], Any, str], None],
    ) -> None:
        import ast

        import ipywidgets

        self.parameters, self.namespace, self.check = list(parameters), namespace, check
        self.fields: dict[str, Any] = {}
        rows = []
        for parameter in self.parameters:
            name, kind = parameter["name"], parameter["type"].split("[", 1)[0].lower()
            current = namespace.get(name)
            if current is None:
                try:
                    current = ast.literal_eval(parameter.get("default") or "None")
                except (ValueError, SyntaxError):
                    current = None
            description = f"{name}: {parameter['type']}"
            if kind == "bool":
                field = ipywidgets.Checkbox(value=bool(current), description=description, indent=False)
            elif kind == "int" and isinstance(current, int):
                field = ipywidgets.IntText(value=current, description=description)
            elif kind == "float" and isinstance(current, int | float):
                field = ipywidgets.FloatText(value=float(current), description=description)
            elif kind == "str":
                field = ipywidgets.Text(value="" if current is None else str(current), description=description)
            else:
                field = ipywidgets.Text(value=repr(current), description=description, placeholder="a Python literal")
            field.style = {"description_width": "initial"}
            if parameter.get("help"):
                field.tooltip = parameter["help"]
            self.fields[name] = field
            rows.append(field)
        self.apply = ipywidgets.Button(description="Apply", button_style="primary", tooltip="Set these values here")
        self.status = ipywidgets.HTML(value="")
        self.apply.on_click(lambda _button: self.set_values())
        self.widget = ipywidgets.VBox([*rows, ipywidgets.HBox([self.apply, self.status])])

    def values(self) -> dict[str, Any]:
        """The form's values, typed; ``ValueError`` naming the first field that is not its type."""
        import ast

        chosen = {}
        for parameter in self.parameters:
            name, field = parameter["name"], self.fields[parameter["name"]]
            value = field.value
            if isinstance(field.value, str) and parameter["type"].split("[", 1)[0].lower() != "str":
                try:
                    value = ast.literal_eval(field.value)
                except (ValueError, SyntaxError):
                    raise ValueError(f"{name}: {field.value!r} is not a Python literal") from None
            self.check(parameter, value, name)
            chosen[name] = value
        return chosen

    def set_values(self) -> dict[str, Any]:
        try:
            chosen = self.values()
        except Exception as error:  # the check's refusal or a literal that does not parse
            self.status.value = f"{badge('ERROR')} {html.escape(getattr(error, 'message', str(error)))}"
            return {}
        self.namespace.update(chosen)
        names = ", ".join(f"{name} = {value!r}" for name, value in chosen.items())
        self.status.value = f"{badge('OK')} set {html.escape(names)}"
        return chosen

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        rows = [
            [html.escape(p["name"]), html.escape(p["type"]), html.escape(p.get("default") or "")]
            for p in self.parameters
        ]
        return {**bundle, "text/html": _table(["parameter", "type", "default"], rows, "Parameters")}
