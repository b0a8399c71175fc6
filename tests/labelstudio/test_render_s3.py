"""A dataset on object storage, as the annotator sees it: tasks pushed from an ``s3://`` root reference
``s3://`` URIs, Label Studio's S3 import storage (against a real S3-compatible server, moto, on
loopback) presigns them, and in headless Chromium the labeling page's source image element has
loaded the right picture from a presigned URL of that server, not from a local path."""

from __future__ import annotations

import base64
import logging
import re
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from aescot.labelstudio import push_items
from aescot.labelstudio.push import TASKS_TABLE
from tests import realparts
from tests.labelstudio.helpers import colour, make_items, s3_dataset
from tests.labelstudio.test_render import SLOTS, _panel_images, _session_cookie, browser  # noqa: F401
from tests.labelstudio.test_s3 import ls_config, s3_endpoint  # noqa: F401 - loopback S3 + a server allowed to reach it

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

BUCKET = "aescot-ls-render"

# The source image element of the labeling area: what it loaded (src as the page resolved it, its
# decoded size) and its centre pixel, read back through a canvas (which a cross-origin image without
# CORS would refuse: so a pixel read also shows the bucket serves the page properly).
SOURCE_IMG = """(() => {
  const imgs = [...document.querySelectorAll('.lsf-main-view .aescot-slot-source img')];
  if (imgs.length !== 1 || !imgs[0].complete || !imgs[0].naturalWidth) return null;
  const i = imgs[0], cv = document.createElement('canvas');
  cv.width = i.naturalWidth; cv.height = i.naturalHeight;
  const g = cv.getContext('2d'); g.drawImage(i, 0, 0);
  let rgb = null, error = null;
  try { rgb = [...g.getImageData(i.naturalWidth >> 1, i.naturalHeight >> 1, 1, 1).data.slice(0, 3)]; }
  catch (e) { error = String(e); }
  const r = i.getBoundingClientRect();
  return {src: i.src, currentSrc: i.currentSrc, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
          rgb, error, shownWidth: r.width, shownHeight: r.height};
})()"""

# the bytes behind the source element's src (a blob: URL Label Studio made of what it fetched), base64
ELEMENT_BYTES = """(async () => {
  const i = document.querySelector('.lsf-main-view .aescot-slot-source img');
  const b = new Uint8Array(await (await fetch(i.currentSrc || i.src)).arrayBuffer());
  let s = ''; for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
})()"""


def test_labeling_page_loads_the_source_from_a_presigned_s3_url(
    s3_endpoint,  # noqa: F811
    ls_config,  # noqa: F811
    labelstudio_server,
    browser,  # noqa: F811
    caplog,
):
    caplog.set_level(logging.INFO, logger="werkzeug")  # the S3 server's request log
    realparts.need("s3fs", "S3 access (s3fs)", "the dev or s3 extra: pip install -e '.[s3]'")
    s3, store, cfg = s3_dataset(s3_endpoint, BUCKET, ls_config)
    # what Label Studio's docs ask of a bucket its pages read from: GET from the server's origin
    s3.put_bucket_cors(
        Bucket=BUCKET,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}]
        },
    )
    item = make_items(store, 1, image_pool=5, size=256)[0]
    report = push_items(store, cfg)
    assert report.pushed == 1
    assert store.read(TASKS_TABLE.name)[0]["task_id"]

    creds = labelstudio_server.cfg
    cookie = _session_cookie(cfg.url, creds.username, creds.password.get_secret_value())
    browser.send("Network.enable")
    browser.send("Network.setCookie", name="sessionid", value=cookie, url=cfg.url)
    browser.viewport(1920, 1080)
    browser.send("Page.navigate", url=f"{cfg.url}/projects/{report.project_id}/data?labeling=1")
    # every picture of the task decodes in the labeling area, each the right one (by its colour)
    _panel_images(browser, {slot: colour(k) for k, slot in enumerate(SLOTS)})

    deadline = time.monotonic() + 30
    while (shown := browser.eval(SOURCE_IMG)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shown, "the source image element did not load"
    print(f"\nsource image element: {shown}")
    assert (shown["naturalWidth"], shown["naturalHeight"]) == (256, 256)
    assert shown["shownWidth"] > 0 and shown["shownHeight"] > 0
    assert shown["error"] is None and shown["rgb"] == list(colour(0)), shown  # image 0 is the source
    key = item["source_image_key"]
    # the element shows what the page fetched (Label Studio makes it a blob: URL): its bytes are the
    # stored object's, byte for byte
    got = browser.eval(ELEMENT_BYTES)
    assert base64.b64decode(got) == store.read_bytes(key), "the source element holds other bytes"

    # what the page fetched it from: Label Studio's presign endpoint (/tasks/<id>/resolve/?fileuri=) for the task's s3:// URI, never
    # a local path (the local-files endpoint)
    fetched = browser.eval("performance.getEntriesByType('resource').map(e => e.name)")
    assert not [u for u in fetched if "local-files" in u], fetched
    presigned = {}
    for u in fetched:
        parts = urlparse(u)
        if re.search(r"/tasks/\d+/(resolve|presign)/?$", parts.path) and "fileuri" in parse_qs(parts.query):
            f = parse_qs(parts.query)["fileuri"][0]
            presigned[base64.urlsafe_b64decode(f + "=" * (-len(f) % 4)).decode()] = u
    uri = f"s3://{BUCKET}/ds/{key}"
    assert uri in presigned, f"the page did not ask Label Studio to presign {uri}: {fetched}"
    # ... which redirected the browser to a URL of the S3 server signed for that object: the S3
    # server's own request log shows the signed GET of the source, answered 200
    served = [
        r.getMessage()
        for r in caplog.records
        if r.name == "werkzeug" and f"GET /{BUCKET}/ds/{key}?" in r.getMessage()
    ]
    assert any("X-Amz-Signature=" in m and '" 200' in m for m in served), served
    # and the same presign URL, asked with this annotator's session, redirects there (signed, expiring)
    # and gives the stored bytes
    with httpx.Client(cookies={"sessionid": cookie}, follow_redirects=False, timeout=30) as web:
        r = web.get(presigned[uri])
    assert r.is_redirect, (r.status_code, r.text[:300])
    location = r.headers["location"]
    assert location.startswith(f"{s3_endpoint}/{BUCKET}/ds/{key}?"), location
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=" in location, location
    assert httpx.get(location, timeout=30).content == store.read_bytes(key)
