"""Paths the control plane hands to workers, kernels and the mail sink do not depend on its current directory:
workers start inside their job folders, kernels open the demo's warehouse from theirs."""

from pathlib import Path

import pytest

from himalia.demo.mailsink import start_mailsink
from himalia.demo.seed import data_folder
from himalia.execution.accounts import UserIsolation


def test_a_relative_job_root_is_made_absolute_where_it_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    isolation = UserIsolation(mode="shared_account_unsafe", job_root="jobs", home=str(tmp_path / "home"))
    assert isolation.job_root == str(tmp_path / "jobs")


def test_the_demo_data_folder_and_the_mail_folder_are_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert data_folder(".himalia-demo") == tmp_path / ".himalia-demo-data"
    sink = start_mailsink(Path(".himalia-demo/mail"), 0)
    try:
        assert sink.handler.folder == tmp_path / ".himalia-demo" / "mail"
    finally:
        sink.stop()
