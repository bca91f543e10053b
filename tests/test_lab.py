"""The second door: a chapter run in a real JupyterLab, as a reader does it.

A headless `jupyter lab` starts on 127.0.0.1 (free port, random token, fresh settings) with
`BOOK_QUICK=1`; Debian's Chromium opens each chapter of `_toc.yml`, runs all cells, waits for
the kernel to go idle, and checks that no cell shows an error. Where a chapter has an
ipywidgets explorer, the test moves its first slider and checks that the figure changes.

Run: `make lab-test` (part of `make test`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser import ROOT, SCREENSHOTS, chapter_notebooks, chromium, free_port

pytestmark = pytest.mark.lab

RUN_ALL_TIMEOUT_S = 600
CHAPTERS = chapter_notebooks()


def _has_widget(notebook: str) -> bool:
    nb = json.loads((ROOT / f"{notebook}.ipynb").read_text())
    return any("ipywidgets" in "".join(c["source"]) for c in nb["cells"]
               if c["cell_type"] == "code")


def _hidden_cells(notebook: str) -> int:
    """How many code cells the site removes (`remove-cell`): JupyterLab should collapse them."""
    nb = json.loads((ROOT / f"{notebook}.ipynb").read_text())
    return sum(c["cell_type"] == "code" and "remove-cell" in c["metadata"].get("tags", [])
               for c in nb["cells"])


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the repository; yields (base URL, token)."""
    tmp = tmp_path_factory.mktemp("lab")
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (no virtual scrolling), so widgets far down the page exist in the DOM.
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    apputils = settings.parent / "apputils-extension"
    apputils.mkdir()
    (apputils / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    # Never write the executed notebook back into the repository.
    docmanager = settings.parent / "docmanager-extension"
    docmanager.mkdir()
    (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, BOOK_QUICK="1", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), TF_CPP_MIN_LOG_LEVEL="2")
    log = tmp / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={ROOT}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI and containers run as root
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_server(f"{base}api/status?token={token}", proc, log)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("lab-browser")) as context:
        yield context


# JavaScript run in the page: JupyterLab's application object (exposed by
# `expose_app_in_browser`) gives the open notebook, its kernel and its cells' outputs.
_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.sessionContext && w.sessionContext.session &&
            w.sessionContext.session.kernel && w.content && w.content.widgets.length > 0 &&
            w.sessionContext.session.kernel.status === 'idle');
}"""
_RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:run-all-cells');
  return true;
}"""
_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.toJSON().cells;
  const errors = [];
  let unrun = 0;
  cells.forEach((c, i) => {
    if (c.cell_type !== 'code') return;
    if (c.source.length && c.execution_count === null) unrun += 1;
    for (const o of c.outputs) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  });
  return {status: w.sessionContext.session.kernel.status, errors, unrun};
}"""


_EXPLORER_IMG = ".widget-output img"  # the figure an ipywidgets Output / interact redraws


def _first_explorer_image(page) -> str:
    img = page.locator(_EXPLORER_IMG).first
    img.wait_for(state="visible", timeout=60_000)
    return img.get_attribute("src") or ""


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_chapter_runs_in_jupyterlab(lab, browser, notebook):
    base, token = lab
    page = browser.new_page()
    try:
        page.goto(f"{base}lab/tree/{notebook}.ipynb?token={token}&reset", timeout=90_000)
        page.wait_for_function(_READY, timeout=120_000, polling=500)
        started = time.monotonic()
        page.evaluate(_RUN_ALL)
        # run-all resolves once every cell has been executed; then the kernel goes idle
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
            " === 'idle'", timeout=RUN_ALL_TIMEOUT_S * 1000, polling=500)
        state = page.evaluate(_STATE)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"lab-{Path(notebook).name}.png"))
        assert state["errors"] == [], f"{notebook}: cells raised errors in JupyterLab"
        assert state["unrun"] == 0, f"{notebook}: {state['unrun']} code cells did not run"
        collapsed = page.locator(".jp-CodeCell .jp-InputPlaceholder").count()
        assert collapsed == _hidden_cells(notebook), (
            f"{notebook}: {collapsed} code cells open collapsed, not the "
            f"{_hidden_cells(notebook)} hidden ones; run `.venv/bin/python _ext/chapter_cells.py`")
        print(f"\n{notebook}: Run All in JupyterLab took {time.monotonic() - started:.0f} s")

        if _has_widget(notebook):
            before = _first_explorer_image(page)
            handle = page.locator(".widget-slider .noUi-handle").first
            handle.scroll_into_view_if_needed()
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            page.wait_for_function(
                """(before) => {
                  const img = document.querySelector('.widget-output img');
                  return img && img.getAttribute('src') !== before;
                }""", arg=before, timeout=60_000, polling=250)
            after = _first_explorer_image(page)
            assert after and after != before, f"{notebook}: moving the slider left the figure"
            page.screenshot(path=str(SCREENSHOTS / f"lab-{Path(notebook).name}-slider.png"))
    finally:
        page.close()
