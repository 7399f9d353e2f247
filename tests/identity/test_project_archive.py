"""Archiving a project stops its scenarios at once, in the running scheduler too."""

import pytest

from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict
from himalia.wire.identity import UpdateProject


def test_archiving_a_project_takes_its_scenarios_out_of_the_running_scheduler(plane: ControlPlane) -> None:
    """Else the scheduler would keep polling for them and raise their missed deadlines until a restart."""
    admin = plane.users.caller_for("projadmin")
    scheduler = plane.new_scheduler()
    scheduler.start()
    try:
        assert scheduler.loaded.wait(10)  # the scheduler's thread loads, not start()
        assert [entry.slug for entry in scheduler.scheduled().values()] == ["nightly"]
        with pytest.raises(Conflict, match=r"active scenarios \(nightly\): archive it first"):
            plane.projects.delete_project(admin, "ALPHA")
        plane.projects.update_project(admin, "ALPHA", UpdateProject(status="archived"))
        assert scheduler.scheduled() == {}
        assert not plane.scenarios.get_scenario(admin, "ALPHA", "nightly").active

        plane.projects.update_project(admin, "ALPHA", UpdateProject(status="active"))
        assert scheduler.scheduled() == {}  # unarchiving leaves them inactive: a decision, not a restoration
        plane.scenarios.set_active(admin, "ALPHA", "nightly", True)
        assert [entry.slug for entry in scheduler.scheduled().values()] == ["nightly"]
    finally:
        scheduler.stop()
