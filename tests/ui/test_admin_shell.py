"""The administration application's shell in both hosts: an administrator sees the pages they may
open and moves between them by the address; someone whose permissions open no page sees which
permissions would, and nothing of any page, and the API refuses them through the same session.
The ways in: the lab sidebar's button (in a new tab) and the hub's Services menu."""

from playwright import sync_api as playwright_api

from .conftest import AdminApp, Hub, Lab, open_himalia, shoot, sign_in_to_hub


def test_an_administrator_sees_the_pages_and_moves_between_them(page: playwright_api.Page, admin_app: AdminApp) -> None:
    app = admin_app.open(page, "alice")
    header = app.locator(".hml-admin-header")
    assert "Himalia administration" in header.inner_text() and "alice" in header.inner_text()
    links = app.locator(".hml-admin-nav a")
    ids = [(links.nth(i).get_attribute("href") or "").removeprefix("#/") for i in range(links.count())]
    assert ids, "an administrator may open every page"
    assert app.locator(f".hml-admin-main[data-page='{ids[0]}']").count() == 1  # the first, at no address
    for id_ in reversed(ids):
        app.locator(f".hml-admin-nav a[href='#/{id_}']").click()
        app.locator(f".hml-admin-main[data-page='{id_}']").wait_for()
        assert app.locator(f".hml-admin-nav a[href='#/{id_}']").get_attribute("aria-current") == "page"
        assert app.url.endswith(f"#/{id_}")
    shoot(app, f"admin-shell-{admin_app.host}-{ids[0]}")
    app.goto(admin_app.url("alice", "no-such-page"))
    assert "There is no page “no-such-page”" in app.locator(".hml-admin-main").inner_text()

    # Changes go through the page's session: the login cookie with its XSRF token.
    group = f"shell-check-{admin_app.host}"
    status, made = admin_app.fetch(app, "POST", "groups", {"name": group, "permissions": []})
    assert status == 201 and made["name"] == group, made
    assert admin_app.fetch(app, "DELETE", f"groups/{group}")[0] == 204


def test_someone_without_the_permissions_gets_no_page_and_403(page: playwright_api.Page, admin_app: AdminApp) -> None:
    app = admin_app.open(page, "carol", "people")  # a page's address, asked for directly
    screen = app.locator(".hml-admin-main[data-page='none'] .hml-admin-nopage")
    screen.wait_for()
    assert "You may open no page" in screen.inner_text()
    assert "admin" in screen.locator("tbody").inner_text()  # which permission opens which page
    assert app.locator(".hml-admin-nav").count() == 0
    assert app.locator(".hml-admin-main > *").count() == 1  # the screen and nothing of any page
    shoot(app, f"admin-shell-{admin_app.host}-nopage")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert app.evaluate(background) == "rgb(255, 255, 255)"
    app.emulate_media(color_scheme="dark")  # as the browser prefers, outside the lab's themes
    assert app.evaluate(background) == "rgb(13, 17, 23)"
    shoot(app, f"admin-shell-{admin_app.host}-nopage-dark")

    # The same session (cookie and XSRF token) reaches the API: the permission refuses, not the session.
    status, me = admin_app.fetch(app, "GET", "me")
    assert status == 200 and me["login"] == "carol"
    for method, path, body in [
        ("GET", "users", None),
        ("GET", "audit", None),
        ("GET", "health", None),
        ("POST", "groups", {"name": "carols-own", "permissions": ["admin"]}),
    ]:
        status, refusal = admin_app.fetch(app, method, path, body)
        assert status == 403 and "xsrf" not in str(refusal).lower(), (method, path, status, refusal)
    assert "carols-own" not in admin_app.himalia("group", "list")


def test_the_lab_sidebar_opens_the_application_in_a_new_tab_for_those_it_opens_for(
    page: playwright_api.Page, admin_lab: Lab, reader_lab: Lab
) -> None:
    sidebar = open_himalia(page, admin_lab)
    button = sidebar.locator(".hml-admin-link")
    button.wait_for()
    shoot(page, "admin-shell-sidebar-button")
    with page.context.expect_page() as opened:
        button.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.startswith(f"{admin_lab.url}himalia/admin/")
    tab.locator(".hml-admin .hml-admin-nav").wait_for()
    shoot(tab, "admin-shell-from-the-lab")

    sidebar = open_himalia(page, reader_lab)  # carol: no page would open for her
    sidebar.locator(".jp-AccordionPanel-title").first.wait_for()
    assert not sidebar.locator(".hml-admin-link").is_visible()


def test_the_hubs_services_menu_leads_to_the_application(page: playwright_api.Page, admin_hub: Hub) -> None:
    sign_in_to_hub(page, admin_hub, "alice")
    page.goto(f"{admin_hub.url}/hub/home")
    service = page.locator("a[href$='/services/himalia/']")
    assert service.count() >= 1, page.content()
    page.goto(f"{admin_hub.url}/services/himalia/")
    page.locator(".hml-admin[data-login='alice']").wait_for()
    assert page.url == f"{admin_hub.url}/services/himalia/admin/"
