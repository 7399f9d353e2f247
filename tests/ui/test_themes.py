"""The panels use only the theme's variables: the dark theme needs no rule of its own."""

import contextlib

from .conftest import Lab, choose_project, expand, open_himalia, playwright_api, shoot


def _theme(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Choose a theme from the command palette, until the page says it is on.

    The palette re-renders its items while it filters (a click can land on a detached item), and
    its shortcut answers only once the lab has restored its layout: press, type and pick by the
    keyboard, then check the theme, again if the lab was not ready.
    """
    search = page.locator(".jp-ModalCommandPalette input")
    active = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item.lm-mod-active")
    light = "false" if "Dark" in name else "true"
    for _ in range(10):
        for _ in range(30):
            if search.is_visible():
                break
            page.keyboard.press("Control+Shift+C")
            _wait_visible(search)
        search.fill(f"Use Theme: {name}")
        with contextlib.suppress(playwright_api.TimeoutError):
            active.filter(has_text=f"Use Theme: {name}").wait_for(timeout=5_000)
            search.press("Enter")
            page.locator(f"body[data-jp-theme-light='{light}']").wait_for(state="attached", timeout=10_000)
            return
    raise AssertionError(f"The theme {name!r} could not be chosen from the command palette")


def test_the_panels_in_the_dark_theme(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    _theme(page, "JupyterLab Dark")
    try:
        choose_project(sidebar, "FRAUD")
        expand(sidebar, "Data quality").locator("[data-dataset='merchants']").wait_for()
        background = sidebar.evaluate("node => getComputedStyle(node).backgroundColor")
        text = sidebar.locator(".hml-name").first.evaluate("node => getComputedStyle(node).color")
        assert _luminance(background) < 0.2 < _luminance(text), (background, text)
        chosen = sidebar.locator("[data-project='FRAUD'] .hml-row-main")
        chosen_background = chosen.evaluate("node => getComputedStyle(node.parentNode).backgroundColor")
        chosen_text = chosen.locator(".hml-name").evaluate("node => getComputedStyle(node).color")
        assert _luminance(chosen_text) - _luminance(chosen_background) > 0.4, (chosen_background, chosen_text)
        shoot(page, "dark-theme")
    finally:
        _theme(page, "JupyterLab Light")


def _wait_visible(search) -> None:  # type: ignore[no-untyped-def]
    """Wait a little for the palette; a press the lab was not ready for opens nothing."""
    with contextlib.suppress(playwright_api.TimeoutError):
        search.wait_for(state="visible", timeout=1_500)


def _luminance(css_rgb: str) -> float:
    red, green, blue = (int(part) for part in css_rgb[css_rgb.index("(") + 1 : css_rgb.index(")")].split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
