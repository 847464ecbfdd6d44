"""The triage viewer in a real browser. First, headless Chromium loads the served page with a filter
in its URL (server-side filtering) and a written page with a filter in its URL (filtering in
the page's own script), and the DOM it builds holds exactly the matching rows, with a response
that carries ``<script>`` shown as text and never run. Then a relabel through the server's API
ends as a labels dataset the validate-critic loader reads. Second, Chromium is driven over
the DevTools protocol like a person: change the form's filters (the page fetches
``/api/rows``), page forward, mark a verdict (the page posts ``/api/relabel``).

The server runs in this process on 127.0.0.1 (a free port) and is shut down by the test;
Chromium runs in its own process group, killed (that group only) by ``run_chromium`` or
``DevTools.close``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trustflow.data.store import ArtifactStore
from trustflow.tests.integration.test_report_chromium import FLAGS, chromium_binary, run_chromium

pytestmark = [pytest.mark.integration]


def _fixtures() -> ModuleType:
    """The viewer unit tests' small run (12 verdicts), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "unit" / "test_viewer.py"
    spec = importlib.util.spec_from_file_location("trustflow_viewer_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIX = _fixtures()


def shown_prompts(dom: str) -> set[str]:
    """The prompt numbers of the rows the page built (each row's first ``<pre>``)."""
    return set(re.findall(r'<div class="row" data-judgement="[0-9a-f]{16}">.*?<pre>prompt (\d+) ', dom))


def assert_markup_is_text(dom: str) -> None:
    assert "<title>trustflow view" in dom  # the response's script would have set it to "pwned"
    assert '&lt;script&gt;document.title="pwned"&lt;/script&gt;&lt;img src=x onerror=' in dom
    assert "<img" not in dom and 'document.title="pwned"</script>' not in dom


def test_filters_in_the_url_show_only_matching_rows_and_markup_stays_text(local_settings, tmp_path: Path) -> None:
    from trustflow.tasks.seval.label_sources import load_label_records
    from trustflow.tasks.seval.viewer import ViewFilter, open_run
    from trustflow.tasks.seval.viewer_page import static_page
    from trustflow.tasks.seval.viewer_server import start_server

    store = ArtifactStore(settings=local_settings)
    rows = FIX.populate(store)
    want = {str(i) for i, r in enumerate(rows) if r["model"] == "a" and r["lang"] == "en"}
    assert "10" in want and 2 < len(want) < len(rows)  # the markup row is among those shown
    view = open_run(store, FIX.RUN)
    server, thread = start_server(view, 0)
    try:
        served = run_chromium(["--dump-dom", server.url + "?model=a&lang=en&sort=risk"], tmp_path)
        assert served.returncode == 0 and "<html" in served.stdout, served.stderr[-2000:]
        assert shown_prompts(served.stdout) == want
        assert "4 matching verdicts" in served.stdout
        assert_markup_is_text(served.stdout)

        [row] = view.query(ViewFilter(q="pick a lock")).rows
        body = json.dumps(
            {
                "judgement_id": row["judgement_id"],
                "response_id": row["response_id"],
                "label": "unsafe",
                "annotator": "eve",
            }
        ).encode()
        request = urllib.request.Request(
            server.url + "api/relabel", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - our own 127.0.0.1 server
            assert json.loads(resp.read())["status"] == "stored"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    [record] = load_label_records(f"relabel:{FIX.RUN}", store=store)
    assert record.prompt == row["prompt"] and record.unsafe is True and record.label_origin == "human"

    page, _ = static_page(view, ViewFilter())
    written = tmp_path / "page.html"
    written.write_text(page, encoding="utf-8")
    static = run_chromium(["--dump-dom", written.as_uri() + "?model=a&lang=en"], tmp_path)
    assert static.returncode == 0 and "<html" in static.stdout, static.stderr[-2000:]
    assert shown_prompts(static.stdout) == want
    assert_markup_is_text(static.stdout)


class DevTools:
    """A headless Chromium driven over the DevTools protocol (``websockets``, already a
    dependency): evaluate JavaScript in the page and wait for what the page's script does.
    The browser runs in its own process group and the test kills that group only."""

    def __init__(self, url: str, workdir: Path) -> None:
        from websockets.sync.client import connect

        profile = Path(tempfile.mkdtemp(prefix="chromium-cdp-", dir=workdir))
        cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", url]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:  # noqa: S310
                pages = [t for t in json.loads(resp.read()) if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.next_id = 0

    def eval(self, expression: str, timeout_s: float = 10) -> Any:
        """The value of ``expression`` (awaited if it is a promise) in the page."""
        self.next_id += 1
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        self.ws.send(json.dumps({"id": self.next_id, "method": "Runtime.evaluate", "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self.next_id:
                result = msg["result"]
                assert "exceptionDetails" not in result, result["exceptionDetails"]
                return result["result"].get("value")

    def wait_for(self, condition: str, timeout_s: float = 10) -> None:
        """Poll a JavaScript condition until it holds (the page's fetches are asynchronous)."""
        deadline = time.monotonic() + timeout_s
        while not self.eval(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                pytest.fail(f"page never reached: {condition}")
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


SHOWN = (
    "Array.from(document.querySelectorAll('.row .cols > div:first-child pre')).map(e => e.textContent.split(' ')[1])"
)


def test_the_page_filters_pages_and_relabels_through_the_api(local_settings, tmp_path: Path) -> None:
    """What a red-teamer does with the page: change a filter in the form (the page fetches
    /api/rows), page forward, and mark a verdict; the label lands where validate-critic reads."""
    from trustflow.tasks.seval.label_sources import load_label_records
    from trustflow.tasks.seval.viewer import open_run
    from trustflow.tasks.seval.viewer_server import start_server

    store = ArtifactStore(settings=local_settings)
    rows = FIX.populate(store)
    server, thread = start_server(open_run(store, FIX.RUN), 0)
    browser = DevTools(server.url + "?page_size=5", tmp_path)
    try:
        browser.wait_for("document.querySelectorAll('.row').length === 5")
        assert browser.eval("document.getElementById('pageinfo').textContent") == "page 1 of 3"
        browser.eval("document.getElementById('next').click()")
        browser.wait_for("document.getElementById('pageinfo').textContent === 'page 2 of 3'")
        assert "page=2" in browser.eval("location.search")

        browser.eval(
            "document.getElementById('f-model').value = 'b'; document.getElementById('f-lang').value = 'zh';"
            "document.getElementById('filters').requestSubmit()"
        )
        want = sorted(str(i) for i, r in enumerate(rows) if r["model"] == "b" and r["lang"] == "zh")
        browser.wait_for(f"document.getElementById('count').textContent === '{len(want)} matching verdicts'")
        assert sorted(browser.eval(SHOWN)) == want

        browser.eval(
            "document.getElementById('f-model').value = ''; document.getElementById('f-lang').value = '';"
            "document.getElementById('f-q').value = 'pick a lock'; document.getElementById('filters').requestSubmit()"
        )
        browser.wait_for("document.getElementById('count').textContent === '1 matching verdicts'")
        browser.eval(
            "document.getElementById('annotator').value = 'frank';"
            "Array.from(document.querySelectorAll('.row button')).find(b => b.textContent === 'mark unsafe').click()"
        )
        browser.wait_for("document.querySelector('.row .human').textContent === 'human: unsafe (stored)'")
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    [record] = load_label_records(f"relabel:{FIX.RUN}", store=store)
    assert "pick a lock" in record.prompt and record.unsafe is True and record.label_origin == "human"
