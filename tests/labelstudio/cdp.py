"""A minimal Chrome DevTools Protocol driver for headless Chromium (render and keyboard tests)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1200",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class Browser:
    def __init__(self, binary: str):
        self.profile = Path(tempfile.mkdtemp(prefix="aescot-chromium-"))
        self.proc = subprocess.Popen(
            [binary, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20, close_timeout=1)
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 90.0) -> Any:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"page never satisfied: {expression} (last {value!r})")

    def viewport(self, width: int, height: int) -> None:
        """Emulate a window of exactly ``width`` x ``height`` CSS pixels (scale 1)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> Path:
        """Save what the viewport shows (or its ``clip``: x, y, width, height in CSS px) as a PNG."""
        import base64

        extra = {"clip": {**clip, "scale": 1}} if clip else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png", **extra)["data"]))
        return path

    def press(self, key: str, modifiers: int = 0) -> None:
        code = {"Enter": "Enter"}.get(key, f"Key{key.upper()}" if key.isalpha() else f"Digit{key}")
        vk = 13 if key == "Enter" else ord(key.upper())
        base = {
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": vk,
            "nativeVirtualKeyCode": vk,
            "modifiers": modifiers,
        }
        text = {} if modifiers or key == "Enter" else {"text": key}
        self.send("Input.dispatchKeyEvent", type="keyDown", **base, **text)
        self.send("Input.dispatchKeyEvent", type="keyUp", **base)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            # Chromium and its helper processes share the session we started it in
            for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            shutil.rmtree(self.profile, ignore_errors=True)
