"""The administration application as both hosts serve it at ``…/himalia/admin/``.

``npm run build:admin`` bundles it (``jupyter_ext/src/admin/main.tsx``) into ``static/`` beside
this module. The page is a shell: its configuration (the base URL the API is below, where the
person came from) is written into the HTML, and the script asks the API who the person is.
"""

import json
from pathlib import Path
from typing import Any

from tornado import web

STATIC = Path(__file__).parent / "static"
ADMIN_PATH = "himalia/admin/"
#: The page's Content-Security-Policy: its own script and styles only (its configuration is JSON,
#: which the policy does not run), inline styles for the spawn-form preview (a sandboxed
#: ``srcdoc`` frame, which inherits the policy), and no framing by another site.
ADMIN_PAGE_POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


def admin_page(base_url: str, app_url: str, home_url: str, home_label: str) -> str:
    """The application's HTML at ``app_url`` for an API below ``base_url`` (``IPageConfig`` in
    main.tsx), its assets versioned by content so that a browser never runs a stale build."""
    settings = {"static_path": str(STATIC)}
    versions = {name: web.StaticFileHandler.get_version(settings, name) for name in ("admin.js", "admin.css")}
    if None in versions.values():
        raise web.HTTPError(503, reason="The administration application is not built: run npm run build:admin.")
    script, style = (web.escape.xhtml_escape(f"{app_url}static/{name}?v={v}") for name, v in versions.items())
    config = {"baseUrl": base_url, "homeUrl": home_url, "homeLabel": home_label}
    data = json.dumps(config).replace("<", "\\u003c")  # no '</script>' in a value can end the element
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Himalia administration</title><link rel="stylesheet" href="{style}">'
        f'<script id="himalia-admin-config" type="application/json">{data}</script></head>'
        f'<body><div id="himalia-admin"></div><script src="{script}"></script></body></html>'
    )


class AdminStaticFiles(web.StaticFileHandler):
    """The bundle's files, which no other site may frame and no browser may read as another type
    (the hosts' own handlers say the same on the page and the API)."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.set_header("X-Content-Type-Options", "nosniff")


def static_route(app_url: str) -> tuple[str, type[web.StaticFileHandler], dict[str, Any]]:
    """The bundle's files below the application's ``app_url`` (public: they hold no data)."""
    return (f"{app_url}static/(.*)", AdminStaticFiles, {"path": str(STATIC)})
