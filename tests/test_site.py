"""The built site in a real browser, offline: every page of `_toc.yml` is opened in Debian's
Chromium from a server on 127.0.0.1 and checked as a reader would see it.

Run after a build: `SITE_DIR=_build/html pytest -m browser tests/test_site.py`
(`make test` does it on the quick build, `.ci/run` also on the full build).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest

from tests.browser import SCREENSHOTS, book_config, book_pages, chapter_notebooks, chromium, serve

pytestmark = pytest.mark.browser

MAX_PAGE_BYTES = 5 * 2**20
PAGES = book_pages()
WEIGHTS: dict[str, int] = {}


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
    html = (site_dir / f"{notebook}.html").read_text()
    links = re.findall(r'href="(https://[^"]*/v2/gh/[^"]*)"', html)
    assert links, f"{notebook}: no Binder launch button"
    repo = book_config()["repository"]
    url = urlparse(links[0])
    owner_repo = urlparse(repo["url"]).path.strip("/")
    assert url.path == f"/v2/gh/{owner_repo}/{repo['branch']}"
    assert parse_qs(url.query)["urlpath"] == [f"lab/tree/{notebook}.ipynb"]


def _chapter_title(notebook: str) -> str:
    cells = json.loads((Path(__file__).resolve().parent.parent / f"{notebook}.ipynb").read_text())
    first = "".join(cells["cells"][0]["source"])
    return first.splitlines()[0].lstrip("# ")
