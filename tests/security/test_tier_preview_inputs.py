"""Class 14 (tier preview inputs): the group of ``GET /spawn-form`` and the tier of ``GET /usage``.

A tier manager asks for the spawn form of every malformed, hostile or merely unknown group name,
and for the usage of every hostile tier name: each is a 400 naming its field or, for a tier that
could exist, an empty page (whether a tier exists is not told), never a 500; only an existing
group gets a form. Someone who does not manage tiers gets the same 403 whether the group exists
or not, so the preview tells nobody which groups there are. A tier whose display name and
description are markup is shown escaped in the preview: the HTML the admin page embeds carries no
element a tier manager typed.
"""

import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.compute import TierSpec

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "14 tier preview inputs"

HOSTILE_NAMES = [
    "",
    " ",
    "'",
    "readers' OR '1'='1",
    "readers; DROP TABLE groups",
    '"; SELECT * FROM connections; --',
    "%",
    "_",
    "*",
    "..",
    "../readers",
    "readers/..",
    "\x00",
    "readers\x00admins",
    "\u202esredaer",
    "\uff52\uff45\uff41\uff44\uff45\uff52\uff53",
    "READERS",
    "<script>alert(1)</script>",
    "x" * 101,
    "x" * 5000,
    "nobody-here",
    "administrators2",
]


@pytest.fixture
def hostile_tier(plane: ControlPlane) -> None:
    operator = Caller.operator("test-setup", client_address="test")
    markup = TierSpec(
        display_name='<img src=x onerror="alert(1)">',
        description="</fieldset><script>alert(2)</script>",
    )
    plane.tiers.put_tier(operator, "small", markup)


def test_every_group_is_a_named_refusal_or_its_own_form(api: LiveAPI, ledger: Ledger, hostile_tier: None) -> None:
    for group in HOSTILE_NAMES:
        response = api.request("GET", "/spawn-form", params={"group": group})
        assert response.status_code == 400, (group, response.status_code, response.text)
        assert response.json()["field"] == "group", (group, response.json())
        ledger.tried(ATTACK, ("group", group), True)
    assert api.request("GET", "/spawn-form", params={"group": "readers"}).json()["tiers"] == ["small"]


def test_markup_in_a_tier_is_escaped_in_the_preview(api: LiveAPI, ledger: Ledger, hostile_tier: None) -> None:
    form = api.request("GET", "/spawn-form").json()["html"]
    for element in ("<img", "<script", "</fieldset><"):
        assert ledger.tried(ATTACK, ("markup", element), element not in form), (element, form)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in form


def test_who_may_not_preview_learns_nothing_about_groups(api: LiveAPI, ledger: Ledger, hostile_tier: None) -> None:
    for role in ("nogrant", "reader", "contributor", "projadmin"):
        existing = api.request("GET", "/spawn-form", role, params={"group": "readers"})
        unknown = api.request("GET", "/spawn-form", role, params={"group": "nobody-here"})
        assert (existing.status_code, unknown.status_code) == (403, 403), role
        assert existing.json() == unknown.json(), role
        ledger.tried(ATTACK, ("role", role), True)


def test_every_tier_filter_is_a_named_refusal(api: LiveAPI, ledger: Ledger, hostile_tier: None) -> None:
    for role in ("admin", "reader"):
        for tier in HOSTILE_NAMES:
            response = api.request("GET", "/usage", role, params={"running": "true", "tier": tier})
            assert response.status_code in {200, 400}, (role, tier, response.status_code, response.text)
            if response.status_code == 400:
                assert response.json()["field"] == "tier", (role, tier, response.json())
            else:
                assert response.json()["total"] == 0, (role, tier)
            ledger.tried(ATTACK, ("tier", role, tier), response.status_code == 400)
