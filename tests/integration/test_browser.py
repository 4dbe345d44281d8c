"""The provenance page in a real headless Chromium, served by uvicorn over a real socket.

The same kind of seeded world as test_api.py (events anchored on anvil), but the app runs under
uvicorn on a free 127.0.0.1 port and a real browser fetches the item page, in English and in
Chinese: the rendered DOM must show the seven verified events, each with its evidence mark
(attested by the responsible party, or a claim that is not), and load nothing from other hosts,
and a phone-sized screenshot of each language is kept in pytest's base temporary directory
(`<basetemp>/browser/item-<lang>.png`, e.g. /tmp/pytest-of-$USER/pytest-current/browser/).

Needs `chromium` on PATH: `scripts/ensure-browser.sh` installs it (as root, with apt-get).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
import uvicorn
from psycopg_pool import ConnectionPool

from api.i18n import TEXTS
from tests.support.world import ITEM, seed_world
from tracefin.embedded import free_port
from tracefin.processes.api import build_app
from tracefin.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHONE = (412, 915)  # CSS pixels of a common Android phone viewport
BROWSER_TIMEOUT_S = 60
# What the browser must not do: reach the closed network for updates, sync, QUIC, first-run UI.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
LANGUAGES = {
    # lang: (browser locale flags, badge text, summary pill, a stage name)
    "en": (
        ["--lang=en-US", "--accept-lang=en"],
        "Verified on chain",
        "Verified on chain: 7",
        "Shipped",
    ),
    "zh": (["--lang=zh-CN", "--accept-lang=zh-CN"], "已上链验证", "已上链验证: 7", "生产"),
}


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        pytest.skip("chromium is not installed; run scripts/ensure-browser.sh (root, apt-get)")
    return found


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser", numbered=False)


@dataclass
class Served:
    base_url: str


def _seed_world(database_url: str, chain_rpc_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_world(conn, chain_rpc_url)


@pytest.fixture
def served(fresh_database_url: str, chain_rpc_url: str) -> Iterator[Served]:
    """The seeded world behind the real app under uvicorn, in a thread, on a free port."""
    _seed_world(fresh_database_url, chain_rpc_url)
    port = free_port()
    settings = Settings(
        _env_file=None,
        database_url=fresh_database_url,
        chain_rpc_url=chain_rpc_url,
        api_host="127.0.0.1",
        api_port=port,
        api_public_rate_per_minute=10_000,
    )
    pool = ConnectionPool(
        fresh_database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True
    )
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(settings, pool),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn exited before it started (port taken?)"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(15)
        pool.close()
    assert not thread.is_alive(), "uvicorn did not shut down within 15 s"


@dataclass
class BrowserRun:
    stdout: str
    stderr: str


def _run_chromium(binary: str, args: list[str], profile: Path) -> BrowserRun:
    """One headless Chromium run, bounded; the whole process group dies on timeout."""
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=10)
        raise AssertionError(
            f"chromium {args} did not finish within {BROWSER_TIMEOUT_S} s:\n"
            f"{err.decode(errors='replace')[-3000:]}"
        ) from None
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, f"chromium {args} exited {process.returncode}:\n{stderr}"
    return BrowserRun(out.decode(errors="replace"), stderr)


@dataclass
class EventCard:
    classes: list[str]
    badge: str = ""  # the chain's mark
    marks: list[str] = field(default_factory=list)  # the evidence mark: attested, or a claim


class PageDom(HTMLParser):
    """What the test reads from the rendered DOM: events, badges, pills, every URL it uses."""

    URL_ATTRIBUTES = frozenset(
        {"src", "href", "srcset", "action", "formaction", "poster", "data", "background"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = ""
        self.tags: set[str] = set()
        self.events: list[EventCard] = []
        self.pills: list[str] = []
        self.stages: list[str] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.css: list[str] = []  # <style> contents and style="" attributes
        self._capture: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        for name, value in values.items():
            if name in self.URL_ATTRIBUTES or value.startswith(("http:", "https:", "//")):
                self.urls.append((tag, name, value))
        if "style" in values:
            self.css.append(values["style"])
        if tag == "html":
            self.lang = values.get("lang", "")
        if tag == "li" and "event" in classes:
            self.events.append(EventCard(classes))
        elif tag == "span" and "badge" in classes and self.events:
            self._start("badge")
        elif tag in ("span", "div") and "mark" in classes and self.events:
            self._start("mark")
        elif tag == "span" and "pill" in classes:
            self._start("pill")
        elif tag == "div" and "stage" in classes:
            self._start("stage")
        elif tag == "style":
            self._start("style")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if (self._capture, tag) in {
            ("badge", "span"),
            ("mark", "span"),
            ("mark", "div"),
            ("pill", "span"),
            ("stage", "div"),
            ("style", "style"),
        }:
            self._finish()

    def _start(self, what: str) -> None:
        self._finish()  # a stage's name ends where its badge begins
        self._capture, self._text = what, []

    def _finish(self) -> None:
        text = " ".join("".join(self._text).split())
        if self._capture == "badge":
            self.events[-1].badge = text
        elif self._capture == "mark":
            self.events[-1].marks.append(text)
        elif self._capture == "pill":
            self.pills.append(text)
        elif self._capture == "stage":
            self.stages.append(text)
        elif self._capture == "style":
            self.css.append(text)
        self._capture, self._text = None, []


def parse_dom(html: str) -> PageDom:
    dom = PageDom()
    dom.feed(html)
    dom.close()
    return dom


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


def foreign_references(dom: PageDom, base_url: str) -> list[str]:
    """Every URL in an attribute or in CSS that names a host other than the page's own."""
    own = urlsplit(base_url).netloc
    references = [
        candidate.split()[0]
        for tag, name, value in dom.urls
        for candidate in (value.split(",") if name == "srcset" else [value])
        if candidate.strip()
    ]
    references += [m.group(1) or m.group(2) for css in dom.css for m in CSS_URL.finditer(css)]
    foreign = []
    for reference in references:
        parts = urlsplit(reference.strip())
        if parts.scheme in ("", "http", "https") and parts.netloc not in ("", own):
            foreign.append(reference)
        elif parts.scheme not in ("", "http", "https", "data"):
            foreign.append(reference)  # ftp:, ws:, … : anything that is not this page or inline
    return foreign


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_item_page_in_a_headless_browser(
    chromium: str, served: Served, screenshot_dir: Path, tmp_path: Path, lang: str
) -> None:
    locale_flags, badge, pill, stage_name = LANGUAGES[lang]
    url = served.base_url + ITEM

    run = _run_chromium(chromium, [*locale_flags, "--dump-dom", url], tmp_path / "profile-dom")
    dom = parse_dom(run.stdout)
    assert dom.lang.split("-")[0] == lang, f"page language {dom.lang!r}; DOM:\n{run.stdout[:2000]}"
    assert len(dom.events) == 7, f"{len(dom.events)} events in the timeline:\n{run.stdout[:3000]}"
    attested = TEXTS[lang]["counts"]
    for card in dom.events:
        assert "anchored" in card.classes, card
        assert card.badge == badge, card
        # The second mark, separate from the chain's: attested by the responsible party, or a
        # claim that is not (never both, never neither).
        assert len(card.marks) == 1, card
        assert (card.marks == [attested]) == ("counts" in card.classes), card
    assert pill in dom.pills, dom.pills
    assert any(stage.startswith(stage_name) for stage in dom.stages), dom.stages
    assert "script" not in dom.tags
    assert foreign_references(dom, served.base_url) == []
    # The only links are the seven proof links, on this host, and they answer with a bundle.
    proofs = [value for tag, name, value in dom.urls if tag == "a" and name == "href"]
    assert len(proofs) == 7, dom.urls
    assert all(urlsplit(href).path.startswith("/v1/proofs/") for href in proofs), proofs
    with urllib.request.urlopen(served.base_url + proofs[0], timeout=10) as response:
        assert orjson.loads(response.read())["status"] == "anchored"

    shot = screenshot_dir / f"item-{lang}.png"
    shot.unlink(missing_ok=True)
    _run_chromium(
        chromium,
        [
            *locale_flags,
            f"--screenshot={shot}",
            f"--window-size={PHONE[0]},{PHONE[1]}",
            "--force-device-scale-factor=1",
            url,
        ],
        tmp_path / "profile-shot",
    )
    assert shot.is_file(), f"no screenshot at {shot}"
    assert png_size(shot) == PHONE
    # A blank or error page compresses to a few kilobytes; the timeline is far more than that.
    assert shot.stat().st_size > 20_000, f"{shot} is only {shot.stat().st_size} bytes"
