"""Report pages opened by a real browser: headless Chromium (Debian package ``chromium``).

A unit test can only read the HTML string; a browser proves the page parses, lays out and
paints (CSS applied, plots decoded) with no network, and that the numbers survive into the
DOM it builds. Chromium is a required test dependency: when it is missing the test fails
and says how to install it, so CI never silently skips the check.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.integration]

INSTALL_HINT = (
    "install it with: sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
TIMEOUT_S = 90


def _fixtures() -> ModuleType:
    """The unit tests' store builder (one realistic run per flow), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "unit" / "test_report.py"
    spec = importlib.util.spec_from_file_location("trustflow_report_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIX = _fixtures()


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"headless Chromium is required for the report tests but `chromium` is not on PATH; {INSTALL_HINT}",
        pytrace=False,
    )


def run_chromium(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """One Chromium run in its own process group with a fresh profile, killed (with its
    zygote/renderer helpers, and nothing else) when it ends or overruns."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"chromium did not finish in {TIMEOUT_S}s: {' '.join(cmd)}\n{err[-2000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftover helpers of this browser only
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.report import build_leaderboard_report, build_run_report, write_report

    root = tmp_path_factory.mktemp("report")
    store = ArtifactStore(f"file://{root / 'store'}")
    expected = FIX.populate_store(store)
    pages = {
        "detector": write_report(build_run_report(store, FIX.DETECT_RUN), root / f"{FIX.DETECT_RUN}.html"),
        "seval": write_report(build_run_report(store, FIX.SEVAL_RUN), root / f"{FIX.SEVAL_RUN}.html"),
        "leaderboard": write_report(build_leaderboard_report(store), root / "leaderboard.html"),
    }
    return {"root": root, "pages": pages, "expected": expected}


@pytest.mark.parametrize("page", ["detector", "leaderboard"])
def test_page_renders_a_non_blank_screenshot(reports: dict[str, Any], page: str) -> None:
    from PIL import Image, ImageStat

    shot = reports["root"] / f"{page}.png"
    result = run_chromium(
        [f"--screenshot={shot}", "--window-size=1280,2000", reports["pages"][page].as_uri()], reports["root"]
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        gray = image.convert("L")
        assert ImageStat.Stat(gray).var[0] > 200, "screenshot is (nearly) blank"
        assert len(gray.getcolors(256) or []) > 50, "screenshot has too few shades to hold text, tables and plots"
        r, g, b = image.convert("RGB").getpixel((5, 5))[:3]
        assert r + g + b < 200, "the dark page header is missing: inline CSS not applied?"


def test_key_numbers_are_in_the_dom(reports: dict[str, Any]) -> None:
    expected = reports["expected"]
    doms = {}
    for page in ("detector", "seval", "leaderboard"):
        result = run_chromium(["--dump-dom", reports["pages"][page].as_uri()], reports["root"])
        assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
        doms[page] = result.stdout
    for text in expected["detector"]:
        assert text in doms["detector"], text
    for text in expected["seval"]:
        assert text in doms["seval"], text
    for text in ("87.5", "0.412", "+0.102", "0.426", "0.895", "0.392", FIX.TRAIN_RUN, FIX.ROBUST_RUN):
        assert text in doms["leaderboard"], text
    for dom in doms.values():
        assert "<script" not in dom
    assert '&lt;script&gt;alert("pwned")&lt;/script&gt;' in doms["detector"]
    assert doms["detector"].count('src="data:image/png;base64,') == 2
    assert doms["seval"].count('src="data:image/png;base64,') == 2
