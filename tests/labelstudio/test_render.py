"""The labeling page as an annotator sees it, in headless Chromium on Label Studio's label stream:
the source and the four candidates decode inside the labeling area (the right picture in each place,
no error box), candidates are large enough to judge and every control and Submit fit on one
1440x900 screen (screenshots at 1440x900 and 1920x1080 are kept), a contradiction the page can
prevent cannot be submitted, an item labelled with the keyboard only comes back through collect as
exactly the record that was keyed in, and the source shows the outline of its product mask (the
plain photo when its source has no mask), as decoded and as drawn on the screen."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from aescot.contracts import validate
from aescot.labelstudio import collect_annotations, push_items
from aescot.labelstudio.outlines import OUTLINES_TABLE, draw, outline_width
from aescot.labelstudio.push import TASKS_TABLE
from aescot.masks.outline import OUTLINE_RGB, edge
from aescot.vocab import DIMENSIONS
from tests import realparts
from tests.labelstudio.cdp import Browser, find_chromium
from tests.labelstudio.helpers import add_source, admin, colour, make_items, product_mask_png

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

SLOTS = ("source", "A", "B", "C", "D")
MIN_CANDIDATE_WIDTH = 300

# Every <img> of the labeling area (Label Studio's main view, not the data manager's thumbnails):
# decoded size, the part of it its clipping container shows, and its centre pixel (which picture it is).
PANEL_IMAGES = """(() => {
  const imgs = [...document.querySelectorAll('.lsf-main-view img')];
  if (!imgs.length || imgs.some(i => !i.complete)) return null;
  return imgs.map(i => {
    const a = i.getBoundingClientRect(), c = (i.closest('.lsf-image') || i).getBoundingClientRect();
    let rgb = null;
    if (i.naturalWidth > 0) {
      const cv = document.createElement('canvas');
      cv.width = i.naturalWidth; cv.height = i.naturalHeight;
      const g = cv.getContext('2d'); g.drawImage(i, 0, 0);
      rgb = [...g.getImageData(i.naturalWidth >> 1, i.naturalHeight >> 1, 1, 1).data.slice(0, 3)];
    }
    return {naturalWidth: i.naturalWidth, rgb,
            left: Math.max(a.left, c.left), right: Math.min(a.right, c.right),
            top: Math.max(a.top, c.top), bottom: Math.min(a.bottom, c.bottom)};
  });
})()"""
ERROR_BOX = "document.body.innerText.includes('There was an issue loading')"
# What must be reachable without scrolling: every visible radio/checkbox, the star ratings, Submit.
# ticked as drawn (Ant Design's checked classes): the radios of the four verdicts share one HTML name,
# so the browser's own :checked state of a radio says nothing about what Label Studio holds
CHECKED = (
    "[...document.querySelectorAll('.lsf-main-view .ant-radio-wrapper-checked,"
    " .lsf-main-view .ant-checkbox-wrapper-checked')]"
    ".filter(l => l.getBoundingClientRect().width > 0).map(l => l.innerText.replace(/\\[.*\\]/, '').trim())"
)
CONTROLS = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left,
                     right: r.right, text: (e.innerText || e.className.toString()).trim().slice(0, 40)}; };
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const controls = [...document.querySelectorAll('.lsf-main-view label, .lsf-main-view .ant-rate')].filter(shown);
  const submit = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Submit');
  const scrolled = [document.scrollingElement, ...document.querySelectorAll('.lsf-main-content, .lsf-main-view')]
    .some(e => e && e.scrollTop > 0);
  return {controls: controls.map(box), submit: submit && box(submit), scrolled,
          width: innerWidth, height: innerHeight};
})()"""
# The source image the annotator looks at (the labeling area's source slot, not a data manager
# thumbnail): where it is on the screen, what it loaded, and its decoded pixels as a PNG.
SOURCE_SHOWN = """(() => {
  const imgs = [...document.querySelectorAll('.lsf-main-view .aescot-slot-source img')];
  if (imgs.length !== 1 || !imgs[0].complete || !imgs[0].naturalWidth) return {count: imgs.length};
  const i = imgs[0], a = i.getBoundingClientRect(), c = (i.closest('.lsf-image') || i).getBoundingClientRect();
  const cv = document.createElement('canvas');
  cv.width = i.naturalWidth; cv.height = i.naturalHeight;
  cv.getContext('2d').drawImage(i, 0, 0);
  const x = Math.max(a.left, c.left), y = Math.max(a.top, c.top);
  const task = window.Htx && window.Htx.task;  // the task on the page (Label Studio's own store)
  return {count: 1, item: task && task.dataObj.aescot_item, naturalWidth: i.naturalWidth,
          png: cv.toDataURL('image/png'),
          box: {x, y, width: Math.min(a.right, c.right) - x, height: Math.min(a.bottom, c.bottom) - y}};
})()"""
MODAL_TEXT = "(() => { const m = document.querySelector('.lsf-modal-ls_visible, .ant-modal'); return m && m.innerText; })()"


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


@pytest.fixture
def artefacts(tmp_path) -> Path:
    """Where screenshots go: ``$AESCOT_TEST_ARTEFACTS`` (kept by CI), else the test's tmp dir."""
    folder = Path(os.environ.get("AESCOT_TEST_ARTEFACTS") or tmp_path) / "labeling-page"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _close_instructions(browser: Browser) -> None:
    """The project's instructions open with the stream (show_instruction), their example pictures
    (one per dimension) decoded; an annotator closes them."""
    browser.wait_for("!!document.querySelector('button[aria-label=\"Close modal\"]')", 60)
    shown = browser.wait_for(
        "(() => { const i = [...document.querySelectorAll('.lsf-modal-ls_visible img')];"
        f" return i.length === {len(DIMENSIONS)} && i.every(x => x.complete && x.naturalWidth > 0)"
        " && i.map(x => x.alt); })()",
        30,
    )
    assert [alt.split(":")[0] for alt in shown] == list(DIMENSIONS)
    browser.eval("document.querySelector('button[aria-label=\"Close modal\"]').click()")
    browser.wait_for("!document.querySelector('.lsf-modal-ls_visible')", 10)


def _panel_images(browser: Browser, expected: dict[str, tuple[int, int, int]]) -> dict[str, dict]:
    """slot -> its decoded <img> in the labeling area, identified by its pixels; fails naming what is wrong."""
    deadline = time.monotonic() + 90
    while True:
        imgs = browser.eval(PANEL_IMAGES) or []
        error_box = browser.eval(ERROR_BOX)
        found = {}
        for slot, rgb in expected.items():
            hits = [
                i
                for i in imgs
                if i["naturalWidth"] > 0 and max(abs(a - b) for a, b in zip(i["rgb"], rgb)) <= 8
            ]
            if hits:
                found[slot] = hits[0]
        if (len(found) == len(expected) and not error_box) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    missing = [s for s in expected if s not in found]
    assert not missing and not error_box, (
        f"in the labeling area, not decoded or not the right picture: {missing}; "
        f"error box shown: {error_box}; images there: {[(i['naturalWidth'], i['rgb']) for i in imgs]}"
    )
    assert len(imgs) == len(expected), f"{len(imgs)} images in the labeling area, expected {len(expected)}"
    return found


def _layout(browser: Browser, expected, artefacts: Path) -> dict:
    """Candidates' shown widths and every control's box as the page is now; saves a screenshot."""
    imgs = _panel_images(browser, expected)
    page = browser.eval(CONTROLS)
    shot = browser.screenshot(artefacts / f"labeling-{page['width']}x{page['height']}.png")
    widths = {s: round(imgs[s]["right"] - imgs[s]["left"]) for s in SLOTS}
    lowest = max(c["bottom"] for c in page["controls"])
    print(
        f"\nlabeling page at {page['width']}x{page['height']}: shown image widths {widths}; lowest control "
        f"bottom {lowest:.0f}; Submit {page['submit']}; screenshot {shot}"
    )
    off = [c for c in [*page["controls"], page["submit"]] if c["bottom"] > page["height"] or c["top"] < 0]
    assert not off and not page["scrolled"], f"off the {page['width']}x{page['height']} screen: {off}"
    assert all(c["right"] <= page["width"] for c in page["controls"])
    lefts = [imgs[L]["left"] for L in "ABCD"]  # side by side, in order, each fully on screen
    assert lefts == sorted(lefts) and imgs["D"]["right"] <= page["width"]
    return {"widths": widths, "page": page}


def _open_stream(browser: Browser, url: str, project_id: int, size: tuple[int, int], expected) -> None:
    """The label stream ("Label All Tasks"), freshly loaded in a window of ``size``."""
    browser.viewport(*size)
    browser.send("Page.navigate", url=f"{url}/projects/{project_id}/data?labeling=1")
    _panel_images(browser, expected)  # every picture decodes in the labeling area, where it belongs
    _close_instructions(browser)


def _is_outline(rgb: np.ndarray, tolerance: int) -> np.ndarray:
    return (np.abs(rgb[..., :3].astype(int) - OUTLINE_RGB) <= tolerance).all(axis=-1)


def _source_shown(browser: Browser, artefacts: Path, photo: Image.Image, mask: Image.Image, kinds) -> str:
    """The source the annotator sees on the page's task (``kinds``: item id -> ``outlined`` or
    ``plain``), checked pixel by pixel: what the image element decoded, and what the screen shows of
    it (saved as ``source-<kind>.png``); returns the kind."""
    got = browser.wait_for(f"(() => {{ const s = {SOURCE_SHOWN}; return s.count === 1 && s; }})()", 30)
    assert got["item"] in kinds and got["naturalWidth"] == photo.width, (got["item"], got["naturalWidth"])
    which = kinds[got["item"]]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(got["png"].split(",", 1)[1]))).convert("RGB"))
    plain = np.asarray(photo.convert("RGB"))
    line = edge(mask, outline_width(photo.width))
    if which == "outlined":  # the outline along the mask's edge, every other pixel the photo's own
        assert np.array_equal(decoded, np.asarray(draw(photo, mask))), "the page decoded another picture"
        assert _is_outline(decoded, 0)[line].all() and np.array_equal(decoded[~line], plain[~line])
    else:
        assert np.array_equal(decoded, plain) and not _is_outline(decoded, 40).any()
    # on the screen: the image as drawn at its shown size (the outline survives the downscaling)
    shot = browser.screenshot(artefacts / f"source-{which}.png", clip=got["box"])
    screen = np.asarray(Image.open(shot).convert("RGB"))
    h, w = screen.shape[:2]
    assert w >= 150, f"the source is shown {w} px wide"
    on_screen = _is_outline(screen, 60)
    centre = screen[h // 2 - 5 : h // 2 + 5, w // 2 - 5 : w // 2 + 5].reshape(-1, 3).astype(int)
    assert (np.abs(centre - plain[plain.shape[0] // 2, plain.shape[1] // 2]) <= 8).all(), (
        "not the photo inside"
    )
    small = mask.resize((w, h), Image.Resampling.NEAREST)
    near_edge = ndimage.binary_dilation(edge(small, 1), iterations=3)
    perimeter = int(edge(small, 1).sum())
    print(
        f"\nsource shown {which}: {w}x{h} on screen, {int(on_screen.sum())} outline-coloured pixels "
        f"(mask edge {perimeter} px); screenshot {shot}"
    )
    if which == "outlined":
        assert on_screen.sum() >= 0.6 * perimeter, "the outline is not visible on the screen"
        assert not (on_screen & ~near_edge).any(), "outline colour away from the mask's edge"
    else:
        assert not on_screen.any(), "an outline on a source without a mask"
    return which


# keyboard only: A acceptable; B flawed, its placement ticked, then B acceptable after all (its defects
# hide and are dropped); C flawed with wrong lighting; D flawed; best B. (key, ticks shown after it)
KEYS = (("1", 1), ("6", 2), ("u", 3), ("2", 2), ("7", 3), ("s", 4), ("8", 5), ("x", 6))
KEYED = {
    "acceptable": ["A", "B"],
    "best": "B",
    "dimensions": {"A": [], "B": [], "C": ["lighting_shadow"], "D": ["extension_rationality"]},
}


def _label(browser: Browser) -> None:
    for key, ticks in KEYS:
        time.sleep(0.4)  # a person's pace
        browser.press(key)
        _wait_checked(browser, ticks)
    shown = browser.eval(
        "[...document.querySelectorAll('.lsf-main-view label')].filter(l => l.getBoundingClientRect().width > 0)"
        ".map(l => l.innerText.replace(/\\[.*\\]/, '').trim())"
    )
    # defects are offered for the two flawed candidates only (C, D), none for acceptable A and B
    assert shown.count("Lighting or shadow wrong") == 2, shown


def _wait_checked(browser: Browser, n: int, timeout_s: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        checked = browser.eval(CHECKED)
        if len(checked) == n:
            return checked
        assert time.monotonic() < deadline, f"expected {n} ticked controls, the page shows {checked}"
        time.sleep(0.3)


def _wait_annotations(config, task_id: int, n: int, timeout_s: float = 20) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        anns = list(admin(config).annotations.list(task_id))
        if len(anns) >= n or time.monotonic() > deadline:
            return anns
        time.sleep(0.5)


def _submitted(config, task_ids, n: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        count = sum(len(list(admin(config).annotations.list(t))) for t in task_ids)
        if count >= n or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def test_labeling_page_shows_every_image_fits_one_screen_and_keyboard_labelling_is_collected(
    ls_store, ls_config, labelstudio_server, browser, artefacts
):
    # two tasks showing the same pictures: item 0 of make_items, source image 0, A-D images 1-4; the
    # source of the first has a product mask (its outline is shown), the second's has none (plain photo)
    items = [
        *make_items(ls_store, 1, image_pool=5, size=256),
        *make_items(ls_store, 1, image_pool=5, size=256),
    ]
    mask = product_mask_png(256)
    add_source(ls_store, items[0], mask)
    expected = {slot: colour(k) for k, slot in enumerate(SLOTS)}
    report = push_items(ls_store, ls_config)
    assert report.outlines_drawn == 1
    photo = Image.open(io.BytesIO(ls_store.read_bytes(items[0]["source_image_key"])))
    assert len(ls_store.read(OUTLINES_TABLE.name)) == 1  # drawn for the masked source only
    kinds = {items[0]["item_id"]: "outlined", items[1]["item_id"]: "plain"}
    shown = []
    task_ids = [r["task_id"] for r in ls_store.read(TASKS_TABLE.name)]
    cfg = labelstudio_server.cfg
    cookie = _session_cookie(ls_config.url, cfg.username, cfg.password.get_secret_value())
    browser.send("Network.enable")
    browser.send("Network.setCookie", name="sessionid", value=cookie, url=ls_config.url)

    # first task in a 1920x1080 window: label by keyboard, everything on one screen, submit
    _open_stream(browser, ls_config.url, report.project_id, (1920, 1080), expected)
    shown.append(_source_shown(browser, artefacts, photo, mask, kinds))
    _label(browser)
    browser.press("k")  # D: the extension is implausible
    _wait_checked(browser, 7)
    big = _layout(browser, expected, artefacts)
    browser.press("Enter", modifiers=2)  # Ctrl+Enter submits
    assert _submitted(ls_config, task_ids, 1) == 1, "the keyboard submission did not reach Label Studio"

    # second task in a 1440x900 window: candidates at least 300 px wide, every control and Submit on
    # the first screen
    _open_stream(browser, ls_config.url, report.project_id, (1440, 900), expected)
    shown.append(_source_shown(browser, artefacts, photo, mask, kinds))
    assert sorted(shown) == ["outlined", "plain"], shown  # each task its own source: outlined, plain
    _label(browser)
    small = _layout(browser, expected, artefacts)
    assert min(small["widths"][L] for L in "ABCD") >= MIN_CANDIDATE_WIDTH, small["widths"]
    assert min(big["widths"][L] for L in "ABCD") > small["widths"]["A"]
    # D is flawed without a defect: Label Studio refuses to submit and says why
    browser.press("Enter", modifiers=2)
    message = browser.wait_for(MODAL_TEXT, 20)
    assert "Candidate D is flawed" in message
    assert _submitted(ls_config, task_ids, 2, timeout_s=3) == 1
    browser.eval("document.querySelector('.lsf-modal-ls_visible button, .ant-modal button').click()")
    browser.wait_for(
        "!document.querySelector('.lsf-modal-ls_visible, .ant-modal-wrap:not([style*=none])')", 10
    )
    browser.press("k")
    _wait_checked(browser, 7)
    browser.press("Enter", modifiers=2)
    assert _submitted(ls_config, task_ids, 2) == 2, "the keyboard submission did not reach Label Studio"

    # collect gives back exactly what was keyed in, twice
    collected = collect_annotations(ls_store, ls_config)
    assert (collected.annotations_new, collected.invalid) == (2, 0)
    rows = ls_store.read("annotations")
    assert sorted(r["item_id"] for r in rows) == sorted(i["item_id"] for i in items)
    for row in rows:
        validate("annotation", row)
        assert (row["annotator"], row["status"]) == (cfg.username, "submitted")
        assert {k: row[k] for k in KEYED} == KEYED
        assert row["scores"] == {"A": None, "B": None, "C": None, "D": None}
