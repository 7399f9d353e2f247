"""Projects, presets, grants and the authorization matrix, as the API's users meet them."""

from ..conftest import PROJECT_NAME, LiveAPI


def test_creator_becomes_owner_with_admin(api: LiveAPI) -> None:
    created = api.request("POST", "/projects", role="projadmin", json={"key": "MINE", "name": "Mine", "tags": ["x"]})
    assert created.status_code == 201
    assert created.json()["owner"] == "projadmin"
    grants = api.request("GET", "/projects/MINE/grants", role="projadmin").json()
    assert grants == [
        {
            "principal_type": "user",
            "principal": "projadmin",
            "permissions": [
                "read_dashboards",
                "read_content",
                "write_content",
                "run_scenarios",
                "export_datasets",
                "admin",
            ],
            "preset": "admin",
        }
    ]


def test_bad_input_names_the_field(api: LiveAPI) -> None:
    cases = [
        ({"key": "lower", "name": "n"}, "key"),
        ({"key": "OK", "name": ""}, "name"),
        ({"key": "OK", "name": "n", "colour": "red"}, "colour"),
        ({"key": "OK"}, "name"),
        ({"key": "OK", "name": "n", "tags": "not-a-list"}, "tags"),
    ]
    for body, field in cases:
        response = api.request("POST", "/projects", role="admin", json=body)
        assert response.status_code == 400, body
        assert response.json()["field"] == field, response.json()
    not_json = api.request("POST", "/projects", role="admin", data="{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"
    taken = api.request("POST", "/projects", role="admin", json={"key": "ALPHA", "name": "again"})
    assert taken.status_code == 409 and taken.json()["field"] == "key"
    bad_page = api.request("GET", "/projects?limit=0", role="admin")
    assert bad_page.status_code == 400 and bad_page.json()["field"] == "limit"
    grant = api.request("POST", "/projects/ALPHA/grants", role="admin", json={"group": "readers"})
    assert grant.status_code == 400 and "preset" in grant.json()["message"]
    ghost = api.request("POST", "/projects/ALPHA/grants", role="admin", json={"group": "ghosts", "preset": "reader"})
    assert ghost.status_code == 404 and ghost.json()["field"] == "group"


def test_presets_expand_and_fine_permissions_close_under_implication(api: LiveAPI) -> None:
    presets = {p["name"]: p["permissions"] for p in api.request("GET", "/project-presets", role="reader").json()}
    assert presets["launcher"] == ["read_dashboards", "run_scenarios"]
    fine = api.request(
        "POST", "/projects/ALPHA/grants", role="projadmin", json={"user": "nogrant", "permissions": ["write_content"]}
    ).json()
    nogrant = next(g for g in fine if g["principal"] == "nogrant")
    assert nogrant["permissions"] == ["read_dashboards", "read_content", "write_content"]
    assert nogrant["preset"] is None
    assert api.request("GET", "/projects/ALPHA", role="nogrant").json()["name"] == PROJECT_NAME
    revoked = api.request("DELETE", "/projects/ALPHA/grants/user/nogrant", role="projadmin")
    assert revoked.status_code == 200
    assert api.request("GET", "/projects/ALPHA", role="nogrant").status_code == 404


def test_auth_matrix_for_users_and_groups(api: LiveAPI) -> None:
    api.request("POST", "/projects", role="admin", json={"key": "BETA", "name": "Beta"})
    api.request("POST", "/projects/BETA/grants", role="admin", json={"user": "reader", "preset": "launcher"})
    matrix = api.request("GET", "/auth-matrix?user=reader", role="admin").json()
    rows = {row["project"]: [p for p, held in row["permissions"].items() if held] for row in matrix["projects"]}
    assert rows == {"ALPHA": ["read_dashboards", "read_content"], "BETA": ["read_dashboards", "run_scenarios"]}
    assert not any(matrix["global_permissions"].values())
    group = api.request("GET", "/auth-matrix?group=contributors", role="admin").json()
    assert [row["project"] for row in group["projects"]] == ["ALPHA"]
    admin = api.request("GET", "/auth-matrix", role="admin").json()
    assert {row["project"] for row in admin["projects"]} == {"ALPHA", "BETA"}
    assert all(admin["global_permissions"].values())


def test_listing_search_tag_and_pagination(api: LiveAPI) -> None:
    for index in range(5):
        api.request(
            "POST", "/projects", role="admin", json={"key": f"PAGE{index}", "name": f"Paged {index}", "tags": ["paged"]}
        )
    first = api.request("GET", "/projects?tag=paged&limit=2", role="admin").json()
    assert first["total"] == 5 and [p["key"] for p in first["items"]] == ["PAGE0", "PAGE1"]
    last = api.request("GET", "/projects?tag=paged&limit=2&offset=4", role="admin").json()
    assert [p["key"] for p in last["items"]] == ["PAGE4"]
    found = api.request("GET", "/projects?search=confidential", role="reader").json()
    assert [p["key"] for p in found["items"]] == ["ALPHA"]
    assert api.request("GET", "/projects?search=paged", role="reader").json()["total"] == 0
    assert api.request("GET", "/projects?search=%25", role="admin").json()["total"] == 0  # LIKE wildcards are literal
    assert api.request("GET", "/projects?tag=%25", role="admin").json()["total"] == 0


def test_archive_and_transfer_ownership(api: LiveAPI) -> None:
    changed = api.request("PATCH", "/projects/ALPHA", role="projadmin", json={"status": "archived", "owner": "admin"})
    assert changed.status_code == 200
    assert (changed.json()["status"], changed.json()["owner"]) == ("archived", "admin")
    assert api.request("PATCH", "/projects/ALPHA", role="projadmin", json={"status": "gone"}).status_code == 400


def test_the_last_administrator_cannot_be_removed(api: LiveAPI) -> None:
    for method, path, body in (
        ("DELETE", "/groups/administrators/members/admin", None),
        ("PATCH", "/groups/administrators", {"permissions": []}),
        ("DELETE", "/groups/administrators", None),
        ("PATCH", "/users/admin", {"active": False}),
    ):
        refused = api.request(method, path, role="admin", json=body)
        assert refused.status_code == 409, (path, refused.text)
        assert "without an active administrator" in refused.json()["message"]
    assert api.request("GET", "/groups/administrators", role="admin").json()["members"] == ["admin"]
    assert api.request("POST", "/groups/administrators/members", role="admin", json={"user": "target"}).ok
    assert api.request("DELETE", "/groups/administrators/members/admin", role="admin").ok
