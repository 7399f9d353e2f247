"""In hub mode, report links go through the hub's public URL and its user-redirect, which logs
people in and sends them on to their own lab."""

import pytest
from jupyterhub.services.auth import HubOAuth

from himalia.controlplane import ControlPlane
from himalia.hub.service import HubService


def hub_service(plane: ControlPlane) -> HubService:
    HubOAuth.clear_instance()
    HubOAuth.instance(api_token="t" * 32, api_url="http://127.0.0.1:1/hub/api", base_url="/services/himalia/")
    return HubService(plane, parent=plane)


def test_links_start_at_the_public_hub_url_of_the_environment(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_HUB_URL", "https://hub.example.com/jupyter/hub/")
    plane.public_url = ""
    hub_service(plane).route_run_links()
    assert plane.public_url == "https://hub.example.com/jupyter/"
    assert plane.run_link("FRAUD", "daily", 7) == (
        "https://hub.example.com/jupyter/hub/user-redirect/lab?himalia-run=FRAUD/daily/7"
    )


def test_a_configured_public_url_wins_and_without_any_there_is_no_link(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_HUB_URL", "https://internal:8000/hub/")
    plane.public_url = "https://data.example.com"
    hub_service(plane).route_run_links()
    assert (
        plane.run_link("FRAUD", "daily", 7)
        == "https://data.example.com/hub/user-redirect/lab?himalia-run=FRAUD/daily/7"
    )
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_HUB_URL")
    plane.public_url = ""
    hub_service(plane).route_run_links()
    assert plane.run_link("FRAUD", "daily", 7) is None
