"""The explorer in a real JupyterLab, driven by headless Debian Chromium through the system
chromedriver (Debian packages ``chromium`` and ``chromium-driver``; ``make test`` installs
both, no browser is downloaded): it renders, it follows a session change, and hostile
transcript strings never execute in it.

One JupyterLab server (loopback, random token, a temporary root) serves two notebooks that
call ``mcptrace.explore(...)``: one on ``data/samples``, one on a capture with attacker-controlled
strings everywhere. A screenshot of the explorer is kept in ``test-artifacts/explorer.png``.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import mcptrace
from conftest import SAMPLES
from mcptrace.explorer import ExplorerModel
from test_report import _hostile_capture

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EXPLORER = ".mcptrace-explorer"
PLOT = f"{EXPLORER} .js-plotly-plot"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: pathlib.Path, data: pathlib.Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        f"import mcptrace\nws = mcptrace.load({str(data)!r})\nexplorer = mcptrace.explore(ws)\nexplorer")]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with its own config, data, runtime and settings dirs."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    _notebook(root / "explore_samples.ipynb", SAMPLES)
    _notebook(root / "explore_hostile.ipynb", _hostile_capture(root))
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1")
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("IPYTHONDIR", "ipython")]:
        (home / sub).mkdir()
        env[var] = str(home / sub)
    settings = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                # start the notebook's kernel without asking
                "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True}}
    for name, value in settings.items():
        f = home / "settings" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(24)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(home / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (home / "jupyterlab.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not start in 90 s"
                time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "log": home / "jupyterlab.log"}
    finally:
        # the server and the kernels it started share its process group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture
def browser(tmp_path):
    assert os.path.exists(CHROMIUM), "Debian chromium is installed by `make test` (apt-get install chromium)"
    assert os.path.exists(CHROMEDRIVER), "chromedriver is installed by `make test` (apt-get install chromium-driver)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1500,2100"]:
        opts.add_argument(arg)
    # a path to the driver: Selenium Manager (which downloads drivers) is never consulted
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, cond, timeout: float = 60, what: str = ""):
    def safe(d):
        try:
            return cond(d)
        except StaleElementReferenceException:  # a widget re-rendered under us: look again
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(safe)
    except TimeoutException:
        driver.save_screenshot(str(pathlib.Path(__file__).resolve().parents[1] / "test-artifacts" /
                                   f"explorer-timeout-{what or 'wait'}.png"))
        raise AssertionError(f"timed out waiting for {what or cond}") from None


def _open_and_run(driver, lab, name: str) -> None:
    """Open a notebook in JupyterLab's single-document view, wait for its kernel, Run All Cells,
    and wait for the explorer's first figure."""
    driver.get(f"{lab['base']}/doc/tree/{name}?token={lab['token']}")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell"), what="notebook")

    def kernel_idle(_d):
        with urllib.request.urlopen(f"{lab['base']}/api/sessions?token={lab['token']}", timeout=5) as r:
            sessions = json.load(r)
        return any(s["path"] == name and s["kernel"]["execution_state"] == "idle" for s in sessions)

    _wait(driver, kernel_idle, what="kernel")
    time.sleep(0.5)  # let the page attach to the kernel before the first request
    for attempt in range(3):
        driver.find_element(By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]").click()
        item = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all'],"
                                                       "li.lm-Menu-item[data-command='notebook:run-all-cells']"),
                     what="run-menu")
        item[0].click()

        def started(d):
            for b in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"):  # a kernel dialog, if any
                b.click()
            prompt = d.find_element(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt").text
            return prompt.strip() not in ("[ ]:", "")

        try:
            WebDriverWait(driver, 15, poll_frequency=0.2).until(started)
            break
        except TimeoutException:
            assert attempt < 2, "the notebook never started running"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, PLOT), timeout=90, what="explorer")
    errors = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [e.text for e in errors if "Traceback" in e.text]


def _selects(driver) -> dict[str, Select]:
    """The explorer's <select> elements: findings and session pickers, tool/status/gap filters, gap and call lists."""
    dropdowns = driver.find_elements(By.CSS_SELECTOR, f"{EXPLORER} .widget-dropdown select")
    lists = driver.find_elements(By.CSS_SELECTOR, f"{EXPLORER} .widget-select select")
    assert len(dropdowns) == 5 and len(lists) == 2, (len(dropdowns), len(lists))
    return {"finding": Select(dropdowns[0]), "session": Select(dropdowns[1]), "tool": Select(dropdowns[2]),
            "status": Select(dropdowns[3]), "gap": Select(dropdowns[4]), "gaps": Select(lists[0]),
            "calls": Select(lists[1])}


def _title(driver) -> str:
    titles = driver.find_elements(By.CSS_SELECTOR, f"{PLOT} .gtitle")
    return titles[0].text if titles else ""


def _textarea(driver, index: int) -> str:
    areas = driver.find_elements(By.CSS_SELECTOR, f"{EXPLORER} textarea")
    return areas[index].get_property("value") if len(areas) > index else ""


def test_explorer_renders_in_jupyterlab_and_follows_a_session_change(lab, browser, artifacts):
    t0 = time.monotonic()
    with mcptrace.load(SAMPLES) as ws:
        options = ExplorerModel(ws.con).session_options()
        calls = {sid: ExplorerModel(ws.con).calls(sid) for _l, sid in options}
        finding_options = ExplorerModel(ws.con).finding_options()
        last = finding_options[-1][1]
        last_sessions = [label for label, _sid in ExplorerModel(ws.con).session_options(last)]
    _open_and_run(browser, lab, "explore_samples.ipynb")
    s = _selects(browser)
    # the picker lists every session, most gaps first, exactly as the model orders them
    assert [o.text for o in s["session"].options] == [label for label, _sid in options]
    first, second = options[0][1], options[1][1]
    assert first in _title(browser)
    assert first in browser.find_element(By.CSS_SELECTOR, f"{EXPLORER} .mcptrace-session-summary").text
    assert len(s["calls"].options) == len(calls[first])

    # a user picks the second session: summary, figure, gap and call lists follow
    s["session"].select_by_index(1)
    _wait(browser, lambda d: second in _title(d), what="timeline of the new session")
    _wait(browser, lambda d: second in d.find_element(By.CSS_SELECTOR, f"{EXPLORER} .mcptrace-session-summary").text,
          what="summary")
    _wait(browser, lambda d: len(_selects(d)["calls"].options) == len(calls[second]), what="call list")
    assert first not in _title(browser)

    # pick a call: the inspector shows its request JSON
    s = _selects(browser)
    k = next(i for i, c in enumerate(calls[second]) if c["name"] == "get_forecast")
    s["calls"].select_by_index(k)
    _wait(browser, lambda d: '"name": "get_forecast"' in _textarea(d, 1), what="inspector")
    request = json.loads(_textarea(browser, 1))
    assert request["method"] == "tools/call" and request["id"] == int(calls[second][k]["rpc_id"])
    header = browser.find_element(By.CSS_SELECTOR, f"{EXPLORER} .mcptrace-call-header").text
    assert f"call {calls[second][k]['call_id']}: get_forecast" in header
    browser.execute_script("arguments[0].scrollIntoView(true)", browser.find_element(By.CSS_SELECTOR, EXPLORER))
    time.sleep(0.3)
    browser.save_screenshot(str(artifacts / "explorer.png"))

    # a filter greys the other calls and says so in the title
    n_tool_errors = sum(c["status"] == "tool_error" for c in calls[second])
    s["status"].select_by_visible_text("tool_error")
    _wait(browser, lambda d: f"filter shows {n_tool_errors} of {len(calls[second])} calls" in _title(d),
          what="filtered timeline")
    # the waterfall tab draws the session's tree
    browser.find_element(By.XPATH, "//div[contains(@class,'mcptrace-explorer')]//li[contains(@class,'lm-TabBar-tab')]"
                                   "[.//div[text()='Waterfall']]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, PLOT)) == 2, what="waterfall")

    # the findings list: picking one narrows the session picker to its sessions
    s = _selects(browser)
    assert [o.text for o in s["finding"].options] == [label for label, _fid in finding_options]
    s["finding"].select_by_index(len(finding_options) - 1)
    _wait(browser, lambda d: [o.text for o in _selects(d)["session"].options] == last_sessions, what="narrowed sessions")
    assert time.monotonic() - t0 < 110


def test_hostile_strings_do_not_execute_in_the_explorer(lab, browser, artifacts):
    _open_and_run(browser, lab, "explore_hostile.ipynb")
    s = _selects(browser)
    n_sessions = len(s["session"].options)
    assert n_sessions >= 2
    # go through every session and every call, and open the waterfall once: every string reaches the DOM
    for i in range(n_sessions):
        if i:
            before = _title(browser)
            _selects(browser)["session"].select_by_index(i)
            _wait(browser, lambda d: _title(d) and _title(d) != before, what=f"session {i}")
        n_calls = len(_selects(browser)["calls"].options)
        for k in range(n_calls):
            _selects(browser)["calls"].select_by_index(k)
            _wait(browser, lambda d: _textarea(d, 1).startswith("{"), what="inspector")
    browser.find_element(By.XPATH, "//div[contains(@class,'mcptrace-explorer')]//li[contains(@class,'lm-TabBar-tab')]"
                                   "[.//div[text()='Waterfall']]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, PLOT)) == 2, what="waterfall")
    time.sleep(1.0)  # time for any injected handler (onerror, onload) to fire
    assert browser.execute_script("return document.documentElement.getAttribute('data-pwned')") is None
    injected = browser.execute_script(
        f"return document.querySelectorAll('{EXPLORER} script, {EXPLORER} img:not(.plot-img), {EXPLORER} [onerror], "
        f"{EXPLORER} [onload]').length")
    assert injected == 0, browser.execute_script(
        f"return [...document.querySelectorAll('{EXPLORER} script, {EXPLORER} img:not(.plot-img), {EXPLORER} [onerror], "
        f"{EXPLORER} [onload]')].map(e => e.outerHTML.slice(0, 300))")
    # the payloads are there, shown as text
    texts = [o.text for o in _selects(browser)["session"].options] + [o.text for o in _selects(browser)["calls"].options]
    page_text = browser.find_element(By.CSS_SELECTOR, EXPLORER).text
    assert any("<script>document.documentElement" in t or "<img src=x onerror=" in t for t in texts), texts
    assert "<img src=x onerror=" in page_text or "<script>document.documentElement" in page_text
    browser.save_screenshot(str(artifacts / "explorer-hostile.png"))
