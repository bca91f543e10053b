"""The built site in a real browser, offline: every page of `_toc.yml` is opened in Debian's
Chromium from a server on 127.0.0.1 and checked as a reader would see it.

Run after a build: `SITE_DIR=_build/html pytest -m browser tests/test_site.py`
(`make test` does it on the quick build, `.ci/run` on the full build).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest

from tests.browser import SCREENSHOTS, book_config, book_pages, chapter_notebooks, chromium, serve

pytestmark = pytest.mark.browser

MAX_PAGE_BYTES = 5 * 2**20
PAGES = book_pages()
WEIGHTS: dict[str, int] = {}
AXE: dict[str, list[dict]] = {}
# axe-core rules the book accepts on its pages, each with the reason. None at present: the two
# serious or critical findings so far (the bibliography's list roles, matplotlib's unlabelled
# animation slider) are fixed in the written pages by _ext/accessible_pages.py.
AXE_ACCEPTED: dict[str, str] = {}


@pytest.fixture(scope="module")
def site_dir() -> Path:
    value = os.environ.get("SITE_DIR")
    if not value:
        pytest.skip("SITE_DIR is not set; build the book and run `make site-test`.")
    path = Path(value).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"No built site in {path}: run `make book` (or `make book-quick`) first.")
    return path


@pytest.fixture(scope="module")
def base_url(site_dir):
    with serve(site_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("browser")) as context:
        yield context


@pytest.fixture(scope="module", autouse=True)
def report_weights():
    yield
    if WEIGHTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "page_weights.json").write_text(json.dumps(WEIGHTS, indent=2) + "\n")
        print("\nPage weights (bytes, page with all its assets):")
        for page, size in WEIGHTS.items():
            print(f"  {page:45s} {size / 2**20:7.2f} MB")
    if AXE:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "axe.json").write_text(json.dumps(AXE, indent=2) + "\n")


def _open(browser, url: str):
    """Open a page; return it with the requests it made, their bytes, and console errors."""
    page = browser.new_page()
    requests, errors, sizes = [], [], {}
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_response(response):
        try:
            sizes[response.url] = len(response.body())
        except Exception:  # redirects and aborted requests have no body
            sizes[response.url] = 0

    page.on("response", on_response)
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(300)
    return page, requests, sizes, errors


@pytest.mark.parametrize("path", PAGES)
def test_page_as_a_reader_sees_it(browser, base_url, site_dir, path):
    page, requests, sizes, errors = _open(browser, base_url + path)
    try:
        assert page.title(), f"{path}: no title"
        assert not errors, f"{path}: console errors {errors}"

        # Offline: nothing leaves 127.0.0.1.
        web = [urlparse(u) for u in requests if urlparse(u).scheme in {"http", "https"}]
        outside = [u.geturl() for u in web if u.hostname != "127.0.0.1"]
        assert not outside, f"{path}: requests leave the machine: {outside}"

        # Every image decoded, every image described.
        images = page.eval_on_selector_all(
            "main img", "els => els.map(e => ({src: e.currentSrc || e.src, w: e.naturalWidth, "
                        "alt: e.getAttribute('alt')}))")
        broken = [i["src"] for i in images if i["w"] == 0]
        assert not broken, f"{path}: images not decoded: {broken}"
        undescribed = [i["src"] for i in images if not (i["alt"] or "").strip()]
        assert not undescribed, f"{path}: images without alt text: {undescribed}"

        # Math rendered by the local MathJax, never left as raw TeX.
        if page.locator("main .math").count():
            page.wait_for_selector("main mjx-container", timeout=15000)
            raw = page.eval_on_selector_all(
                "main .math", "els => els.filter(e => !e.querySelector('mjx-container'))"
                              ".map(e => e.textContent.slice(0, 40))")
            assert not raw, f"{path}: math left unrendered: {raw}"

        # Markdown outputs (the tables of display(Markdown(...))) rendered, never left as raw pipes
        # (a table rule left as text: |---| or, after the typographer, |—|).
        rule = r"/\|\s*:?(?:-{3,}|[—–]+)\s*:?\s*\|/"
        raw_tables = page.eval_on_selector_all(
            "main .cell_output", f"els => els.filter(e => {rule}.test(e.innerText))"
                                 ".map(e => e.innerText.slice(0, 60))")
        assert not raw_tables, f"{path}: Markdown tables shown as text: {raw_tables}"

        # Widgets: never an empty placeholder (no widget views without their JavaScript).
        assert page.locator("script[type='application/vnd.jupyter.widget-view+json']").count() == 0

        # Animations (matplotlib's jshtml) are present and play.
        for anim in page.locator("main .animation").all():
            slider = anim.locator("input[type=range]")
            before = slider.input_value()
            anim.locator("button[title='Play'], button[onclick*='play_animation']").first.click()
            page.wait_for_timeout(800)
            assert slider.input_value() != before, f"{path}: animation does not play"

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / (path.replace("/", "_") + ".png"), full_page=True)
        WEIGHTS[path] = sum(sizes.values())
        assert WEIGHTS[path] < MAX_PAGE_BYTES, f"{path}: {WEIGHTS[path]} bytes"
    finally:
        page.close()


@pytest.mark.parametrize("path", PAGES)
def test_internal_links_resolve(browser, base_url, site_dir, path):
    page, *_ = _open(browser, base_url + path)
    try:
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    finally:
        page.close()
    missing = []
    for href in hrefs:
        url = urlparse(href)
        if url.hostname != "127.0.0.1" or url.path.endswith("/_sources/"):
            continue
        rel = url.path.lstrip("/") or "index.html"
        if rel.endswith("/"):
            rel += "index.html"
        target = site_dir / rel
        if not target.is_file():
            missing.append(href)
        elif url.fragment and target.suffix == ".html":
            if not re.search(rf'id="{re.escape(url.fragment)}"', target.read_text()):
                missing.append(href)
    assert not missing, f"{path}: broken internal links: {sorted(set(missing))}"


@pytest.mark.parametrize("notebook", chapter_notebooks())
def test_search_finds_each_chapter(browser, base_url, notebook):
    heading = re.sub(r"[^A-Za-z ]", " ", _chapter_title(notebook)).split()
    word = max(heading, key=len)
    page = browser.new_page()
    try:
        page.goto(urljoin(base_url, f"search.html?q={word}"), wait_until="networkidle")
        page.wait_for_selector("#search-results li", timeout=15000)
        links = page.eval_on_selector_all("#search-results li a", "els => els.map(e => e.href)")
    finally:
        page.close()
    assert any(notebook + ".html" in link for link in links), (word, links)


@pytest.mark.parametrize("notebook", chapter_notebooks())
def test_binder_button_opens_the_chapter_in_jupyterlab(site_dir, notebook):
    link, owner_repo, branch = _launch_link(site_dir, notebook, r"https://[^\"]*/v2/gh/", "Binder")
    url = urlparse(link)
    assert url.path == f"/v2/gh/{owner_repo}/{branch}"
    assert parse_qs(url.query)["urlpath"] == [f"lab/tree/{notebook}.ipynb"]


def _chapter_title(notebook: str) -> str:
    cells = json.loads((Path(__file__).resolve().parent.parent / f"{notebook}.ipynb").read_text())
    first = "".join(cells["cells"][0]["source"])
    return first.splitlines()[0].lstrip("# ")


@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_serious_violation(browser, base_url, path):
    """axe-core (bundled by axe-playwright-python, no download) on every page, light mode."""
    from axe_playwright_python.sync_playwright import Axe

    page, *_ = _open(browser, base_url + path)
    try:
        violations = Axe().run(page).response["violations"]
    finally:
        page.close()
    AXE[path] = [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"]),
                  "targets": [n["target"] for n in v["nodes"][:5]]} for v in violations]
    serious = [f"{v['id']} ({v['impact']}, {len(v['nodes'])}x, e.g. {v['nodes'][0]['target']})"
               for v in violations
               if v["impact"] in {"serious", "critical"} and v["id"] not in AXE_ACCEPTED]
    assert not serious, f"{path}: axe-core finds {serious}"


def test_linkchecker_finds_no_broken_internal_link_or_anchor(base_url, tmp_path):
    """LinkChecker crawls the site from the served index: every internal link and anchor
    resolves. Links that leave 127.0.0.1 are not followed (the tests are offline)."""
    config = tmp_path / "linkcheckerrc"
    # No rate limit on our own server: with LinkChecker's default (10 requests a second) the
    # crawl, one request per anchor, took 4.6 min against 2 min without it.
    config.write_text("[checking]\nmaxrequestspersecond=1000\n\n"
                      "[filtering]\nignore=\n  ^(?!http://127\\.0\\.0\\.1[:/])\n"
                      "checkextern=0\n\n[AnchorCheck]\n\n[output]\nstatus=0\n")
    linkchecker = Path(sys.executable).parent / "linkchecker"
    # A missing anchor is a LinkChecker *warning*, so warnings stay on and fail the test.
    run = subprocess.run([str(linkchecker), "--config", str(config),
                          "--threads", "4", "--timeout", "20", base_url + "index.html"],
                         capture_output=True, text=True, timeout=900)
    summary = [line for line in run.stdout.splitlines() if "link" in line and "checked" in line]
    print("\n".join(summary))
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.mark.parametrize("notebook", chapter_notebooks())
def test_colab_button_opens_the_chapter_from_the_repository(site_dir, notebook):
    colab = re.escape(book_config()["launch_buttons"]["colab_url"].rstrip("/")) + "/"
    link, owner_repo, branch = _launch_link(site_dir, notebook, colab, "Colab")
    path = re.sub(r"/+", "/", urlparse(link).path)
    assert path == f"/github/{owner_repo}/blob/{branch}/{notebook}.ipynb", link


def _launch_link(site_dir: Path, notebook: str, prefix: str, name: str) -> tuple[str, str, str]:
    """The page's first launch link starting with `prefix`, and the repository it should open."""
    links = re.findall(rf'href="({prefix}[^"]*)"', (site_dir / f"{notebook}.html").read_text())
    assert links, f"{notebook}: no {name} launch button"
    repo = book_config()["repository"]
    return links[0], urlparse(repo["url"]).path.strip("/"), repo["branch"]
