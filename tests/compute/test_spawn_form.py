"""The spawn form's wording: numbers as people write them, the currency shown, names from the tiers."""

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from himalia.compute.spawn_form import NO_TIER, spawn_form, tier_summary
from himalia.compute.tiers import load_tiers_file
from himalia.controlplane import ControlPlane
from himalia.core.errors import InvalidInput
from himalia.identity.caller import Caller
from himalia.wire.compute import DescribeTier

from ..conftest import AUDIT_KEY, SECRET_KEY

REPO = Path(__file__).resolve().parents[2]
SEED = load_tiers_file(REPO / "hub_config" / "tiers.yaml")


def tier(name: str, currency: str = "USD", **spec: Any) -> DescribeTier:
    return DescribeTier(name=name, updated_at=datetime.now(UTC), currency=currency, **spec)


def seeded(name: str, currency: str = "USD") -> DescribeTier:
    return tier(name, currency, **SEED[name].model_dump())


class Choices(HTMLParser):
    """The radio buttons of a form and the text of each label, as a browser would read them."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.values: list[str] = []
        self.checked: list[str] = []
        self.labels: list[str] = []
        self.feed(form)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label":
            self.labels.append("")
        if tag == "br":
            self.labels[-1] += "\n"
        if tag == "input" and attributes.get("type") == "radio":
            assert attributes["name"] == "tier"
            self.values.append(str(attributes["value"]))
            if "checked" in attributes:
                self.checked.append(str(attributes["value"]))

    def handle_data(self, data: str) -> None:
        if self.labels:
            self.labels[-1] += data


def test_the_seed_tiers_read_naturally() -> None:
    assert [tier_summary(seeded(name)) for name in SEED] == [
        "1 core, 2 Gi memory, 0.05 USD per hour",
        "2 cores, 8 Gi memory, 0.20 USD per hour",
        "4 cores, 32 Gi memory, 0.80 USD per hour",
        "8 cores, 64 Gi memory, 1 GPU, 3.00 USD per hour",
    ]


def test_display_names_of_the_seed_tiers_state_no_size() -> None:
    """Sizes in a display name contradict the form's numbers as soon as an administrator resizes."""
    for name, spec in SEED.items():
        assert spec.display_name and not re.search(r"\d|core|GiB|Gi\b|GPU\b.*GPU", spec.display_name), name


@pytest.mark.parametrize(
    ("spec", "summary"),
    [
        ({"cpu_request": 0.5}, "0.5 cores, 1 Gi memory, 0.00 EUR per hour"),
        ({"cpu_request": 1, "cpu_limit": 1.5, "memory_limit": 1536 * 2**20}, "1.5 cores, 1.5 Gi memory"),
        ({"cpu_request": 2, "memory_request": 512 * 2**20, "gpus": 2}, "2 cores, 0.5 Gi memory, 2 GPUs"),
        ({"cost_per_hour": 0.005}, "0.005 EUR per hour"),
        ({"cost_per_hour": 12}, "12.00 EUR per hour"),
    ],
)
def test_quantities_and_money(spec: dict[str, Any], summary: str) -> None:
    assert summary in tier_summary(tier("t", "EUR", **spec))


def test_the_form_offers_each_tier_once_with_its_summary_and_preselects() -> None:
    tiers = [seeded("small", "EUR"), seeded("medium", "EUR")]
    form = Choices(spawn_form(tiers))
    assert form.values == ["small", "medium"]
    assert form.checked == ["small"]  # the default tier
    assert " ".join(form.labels[0].split()) == (
        "Small (1 core, 2 Gi memory, 0.05 EUR per hour) Exploring and light analysis. Everyone may use it."
    )
    assert Choices(spawn_form(tiers, chosen="medium")).checked == ["medium"]
    assert Choices(spawn_form(tiers, chosen="gpu")).checked == ["small"]  # no longer offered: the default


def test_names_and_descriptions_are_text_not_markup() -> None:
    hostile = tier("x", display_name="<script>alert(1)</script>", description='"><img src=x onerror=alert(1)>')
    form = spawn_form([hostile])
    assert "<script>" not in form and "<img" not in form
    assert "&lt;script&gt;" in form


def test_no_tier_says_whom_to_ask() -> None:
    assert NO_TIER in spawn_form([])


def test_the_control_plane_tells_each_tier_in_its_currency(db_url: str, tmp_path: Path) -> None:
    plane = ControlPlane(
        home=str(tmp_path / "home"), db_url=db_url, secret_keys=[SECRET_KEY], audit_key=AUDIT_KEY, currency="eur"
    )
    plane.start()
    try:
        operator = Caller.operator("test-setup", client_address="test")
        plane.tiers.seed(operator, SEED)
        small = plane.tiers.get_tier(operator, "small")
        assert small.currency == "EUR"
        assert tier_summary(small) == "1 core, 2 Gi memory, 0.05 EUR per hour"
    finally:
        plane.stop()
    with pytest.raises(InvalidInput, match="currency: '1 €' is not a currency code"):
        ControlPlane(currency="1 €")
