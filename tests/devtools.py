"""Headless Chromium driven over the DevTools protocol: open a page, run a script in it (clicks,
typing), take a screenshot. Debian's `chromium` and `websocket-client`; no Node, no Selenium."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import websocket

from devstack.net import LOOPBACK

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    def __init__(self, connection: websocket.WebSocket) -> None:
        self._ws = connection
        self._ids = itertools.count(1)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        __tracebackhide__ = True  # params may carry a (synthetic) client secret
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:  # events arrive between the answers; skip them
            message = json.loads(self._ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def navigate(self, url: str) -> None:
        """Loads `url` and returns after its load event (scripts ran, the DOM is built)."""
        self._call("Page.enable")
        self._call("Page.navigate", url=url)
        while json.loads(self._ws.recv()).get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` (a promise is awaited); a thrown error is raised here."""
        __tracebackhide__ = True
        result = self._call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or str(details))
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("Page.captureScreenshot")["data"]))


@contextmanager
def open_page(url: str, profile: Path, timeout: float = 30) -> Iterator[Page]:
    """`url` in a fresh headless Chromium (profile dir `profile`), driven over DevTools."""
    assert CHROMIUM is not None, "chromium is not installed: run `make tools`"
    profile.mkdir(parents=True, exist_ok=True)
    with (profile.parent / f"{profile.name}.log").open("wb") as log:
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # we run as root in CI
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,1800",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=" + LOOPBACK,
                "--remote-debugging-port=0",  # Chromium picks one, writes it to the profile
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if browser.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open DevTools; see {profile}.log")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = httpx.get(f"http://{LOOPBACK}:{port}/json/list", timeout=10).json()
        target = next(t for t in targets if t["type"] == "page")
        connection = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        try:
            page = Page(connection)
            page.navigate(url)
            yield page
        finally:
            connection.close()
    finally:
        browser.terminate()
        browser.wait(timeout=10)
