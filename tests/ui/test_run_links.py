"""Links that open: the link a report email carries opens the run's tab in the lab after the
lab's own login; and a notebook report renders under a strict Content-Security-Policy."""

import email
import email.policy
import re
import time
from pathlib import Path

from himalia.execution.report import render_report

from ..execution.test_report import executed_notebook
from .conftest import Lab, shoot

RAISES = "def variables(current):\n    raise ValueError('no')\n"
FAILING = {
    "id": "link_check",
    "name": "Link check",
    "steps": [{"name": "Boom", "type": "set_variables", "code": RAISES}],
    "reporters": [{"type": "email", "to": ["ops@example.com"], "subject": "link check ${runId}"}],
}
STRICT = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def mailed_link(mail: Path, run_id: int) -> str:
    """The "Open the run" link of the report email of run ``run_id`` in the mail sink's folder."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in sorted(mail.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["Subject"] == f"link check {run_id}":
                body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                found = re.search(r"^Open the run: (\S+)", body, re.M)
                assert found, body
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no report email of run {run_id} in {mail}")


def test_the_link_of_a_report_email_opens_the_run_after_the_login(  # type: ignore[no-untyped-def]
    page, admin_lab: Lab, demo_root: tuple[Path, dict[str, str]]
) -> None:
    saved = admin_lab.api("PUT", f"projects/FRAUD/scenarios/{FAILING['id']}", json={"definition": FAILING})
    assert saved.status_code == 200, saved.text
    started = admin_lab.api("POST", f"projects/FRAUD/scenarios/{FAILING['id']}/run", json={})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    root, _ = demo_root
    link = mailed_link(root.parent / (root.name + "-mail"), run_id)
    assert link == f"{admin_lab.url}lab?himalia-run=FRAUD/{FAILING['id']}/{run_id}"
    page.goto(link)
    password = page.locator("#password_input")
    password.fill(admin_lab.token)  # the lab's own login, as a person without a session meets it
    password.press("Enter")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    tab = page.locator(f".hml-run-page section[data-run='{run_id}']")
    tab.wait_for(state="visible")
    page.wait_for_function(
        f"document.querySelector(\".hml-run-page section[data-run='{run_id}']\").dataset.state === 'failed'"
    )
    assert "Boom" in tab.inner_text()
    assert "himalia-run" not in page.url, "a reload would open the run again"
    shoot(page, "run-link-opened")


def test_a_report_renders_under_a_strict_content_security_policy(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    html = render_report(executed_notebook(tmp_path), hide_code=False)
    refused: list[str] = []
    page.on("console", lambda message: message.type == "error" and refused.append(message.text))
    page.on("requestfailed", lambda request: refused.append(request.url))
    pages = {"report.html": html, "control.html": '<script src="https://cdnjs.cloudflare.com/x.js"></script>'}
    page.route(
        "http://report.invalid/*",
        lambda route: route.fulfill(
            status=200,
            body=pages[route.request.url.rsplit("/", 1)[1]],
            headers={"Content-Type": "text/html", "Content-Security-Policy": STRICT},
        ),
    )
    page.goto("http://report.invalid/control.html")  # what nbconvert's lab template did: refused
    page.wait_for_load_state("load")
    assert refused, "the policy refuses a CDN script"
    refused.clear()
    page.goto("http://report.invalid/report.html")
    page.wait_for_load_state("load")
    assert refused == []
    assert "scored 300 rows" in page.inner_text("body")
    width = page.evaluate("document.querySelector('img').naturalWidth")
    assert width == 1  # the embedded image loaded under img-src data:
    shoot(page, "report-strict-csp")
