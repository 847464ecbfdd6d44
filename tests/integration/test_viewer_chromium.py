"""The triage viewer in a real browser: headless Chromium loads the served page with a filter
in its URL (server-side filtering) and a written page with a filter in its URL (filtering in
the page's own script), and the DOM it builds holds exactly the matching rows, with a response
that carries ``<script>`` shown as text and never run. Then a relabel through the server's API
ends as a labels dataset the validate-critic loader reads.

The server runs in this process on 127.0.0.1 (a free port) and is shut down by the test;
Chromium runs in its own process group, killed by ``run_chromium`` and nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from trustflow.data.store import ArtifactStore
from trustflow.tests.integration.test_report_chromium import run_chromium

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
