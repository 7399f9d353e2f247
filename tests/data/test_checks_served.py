"""``himalia checks run`` in a home a control plane serves: the command hands the run to it through
the home's operator socket, and that control plane's kept engine and columns make it one statement."""

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.cli.context import Context
from himalia.controlplane import ControlPlane

from ..scenarios.test_operator_socket import Serving
from .conftest import CHECKS, Warehouse, shared_connection, the_dataset


def test_the_cli_hands_a_check_run_to_the_control_plane_serving_the_home(
    plane: ControlPlane, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_connection(plane, warehouse)
    the_dataset(plane, "kept")
    served = Serving(plane)
    assert served.socket is not None, "the test's home path is too long for a Unix socket"

    def here(*_: object) -> None:
        raise AssertionError("the CLI opened the store instead of asking the serving control plane")

    monkeypatch.setattr(Context, "plane", here)
    arguments = ["--home", plane.home, "--db-url", plane.db_url, "--as", "projadmin", "checks", "run", "ALPHA"]
    try:
        for _ in range(2):
            warehouse.statements()
            result = CliRunner().invoke(main, [*arguments, "events"])
            assert result.exit_code == 0, result.output
            assert result.output.split()[:4] == ["check", "outcome", "value", "message"]
            assert sorted(line.split("  ")[0] for line in result.output.splitlines()[1:]) == sorted(
                check.name for check in CHECKS
            )
        assert len(warehouse.statements()) == 1  # the serving control plane kept the engine and the columns
        refused = CliRunner().invoke(main, [*arguments, "no_such_dataset"])
        assert refused.exit_code == 1 and "There is no dataset 'no_such_dataset' in ALPHA." in refused.output
    finally:
        served.stop()
