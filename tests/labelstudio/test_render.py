"""The labeling page in headless Chromium: the source and four candidates load, every control
renders, and an item labelled with the keyboard only comes back through collect as a valid
annotation record."""

from __future__ import annotations

import httpx
import pytest

from aescot.contracts import validate
from aescot.labelstudio import collect_annotations, push_items
from aescot.labelstudio.push import TASKS_TABLE
from tests import realparts
from tests.labelstudio.cdp import Browser, find_chromium
from tests.labelstudio.helpers import make_items

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

IMAGES_LOADED = """  // distinct source + candidate images decoded (the data table may show thumbnails too)
(() => {
  const imgs = [...document.querySelectorAll('img')].filter(i => i.src.includes('/data/local-files/'));
  const loaded = new Set(imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.src));
  return loaded.size >= 5 && imgs.every(i => i.complete) ? loaded.size : 0;
})()"""


def _session_cookie(url: str, email: str, password: str) -> str:
    with httpx.Client(base_url=url, follow_redirects=True) as web:
        web.get("/user/login/")
        web.post(
            "/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": web.cookies["csrftoken"]},
            headers={"Referer": f"{url}/user/login/"},
        )
        return web.cookies["sessionid"]


@pytest.fixture
def browser():
    binary = find_chromium()
    if binary is None:
        realparts.absent(
            "Chromium", "not on PATH (Debian: apt-get install -y chromium); the render test needs it"
        )
    try:
        b, failed = Browser(binary), None
    except Exception as exc:  # noqa: BLE001 - a browser that does not come up fails the test, saying why
        b, failed = None, f"{binary}: {exc!r}"
    if failed:
        realparts.broken("Chromium", failed)
    yield b
    b.close()


def test_labeling_page_renders_and_keyboard_labelling_is_collected(
    ls_store, ls_config, labelstudio_server, browser
):
    items = make_items(ls_store, 1, image_pool=5)
    report = push_items(ls_store, ls_config)
    task_id = ls_store.read(TASKS_TABLE.name)[0]["task_id"]
    cfg = labelstudio_server.cfg
    cookie = _session_cookie(ls_config.url, cfg.username, cfg.password.get_secret_value())
    browser.send("Network.enable")
    browser.send("Network.setCookie", name="sessionid", value=cookie, url=ls_config.url)
    browser.send("Page.navigate", url=f"{ls_config.url}/projects/{report.project_id}/data?task={task_id}")

    assert browser.wait_for(IMAGES_LOADED) == 5
    # read the text in the same evaluation that checks it: the UI re-renders while it settles
    text = browser.wait_for(
        "(() => { const t = document.body.innerText;"
        " return t.split('Product deformed / text garbled').length === 5 && t; })()",
        60,
    )
    assert text.count("Product deformed / text garbled") == 4
    for label in ("Acceptable candidates", "Best candidate", "None acceptable", "Source product photo"):
        assert label in text
    # one 5-star rating per candidate (rendered after the images on a slow machine)
    assert browser.wait_for("document.querySelectorAll('.ant-rate').length === 4 && 4", 20) == 4

    # label with the keyboard only: A and C acceptable, A best, C's lighting wrong, submit
    for key in ("1", "3", "z", "s"):
        browser.press(key)
    browser.wait_for("document.querySelectorAll('input[type=checkbox]:checked').length >= 3", 20)
    browser.press("Enter", modifiers=2)  # Ctrl+Enter submits
    collected = None
    for _ in range(40):
        collected = collect_annotations(ls_store, ls_config)
        if collected.annotations_new:
            break
        browser.eval("new Promise(r => setTimeout(r, 500))")
    assert collected.annotations_new == 1, "the keyboard-submitted annotation did not reach Label Studio"
    row = ls_store.read("annotations")[0]
    validate("annotation", row)
    assert (row["item_id"], row["annotator"], row["status"]) == (
        items[0]["item_id"],
        cfg.username,
        "submitted",
    )
    assert (row["acceptable"], row["best"]) == (["A", "C"], "A")
    assert row["dimensions"] == {"A": [], "B": [], "C": ["lighting_shadow"], "D": []}
