"""The provenance page in a real headless Chromium, served by uvicorn over a real socket.

The same kind of seeded world as test_api.py (events anchored on anvil), but the app runs under
uvicorn on a free 127.0.0.1 port and a real browser fetches the item page, in English and in
Chinese: the rendered DOM must show the seven verified events, each with its evidence mark
(attested by the responsible party, or a claim that is not), and load nothing from other hosts,
and a phone-sized screenshot of each language is kept in pytest's base temporary directory
(`<basetemp>/browser/item-<lang>.png`, e.g. /tmp/pytest-of-$USER/pytest-current/browser/).

The cold lot (tests/support/cold_lot.py) is driven over the DevTools protocol, with the sync
client of `websockets` (locked through web3, not a direct dependency of ours): its names, its
temperature chart, its trust marks, and the proof check the page's script does in the browser.

Needs `chromium` on PATH: `scripts/ensure-browser.sh` installs it (as root, with apt-get).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
import websockets.sync.client
from psycopg_pool import ConnectionPool

from api.i18n import TEXTS
from tests.support.api import app_in_thread
from tests.support.cold_lot import (
    EXCURSION_MINUTES,
    PRODUCER_NAME,
    STEPS,
    WAREHOUSE_CITY,
    WAREHOUSE_NAME,
    seed_cold_lot,
)
from tests.support.cold_lot import LOT as COLD_LOT
from tests.support.world import ITEM, seed_world
from tracefin.embedded import free_port
from tracefin.processes.api import build_app
from tracefin.settings import Settings
from tracefin.simulate import WAREHOUSE_GLN

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
        "Anchored on chain",
        "Anchored on chain: 7",
        "Shipped",
    ),
    "zh": (["--lang=zh-CN", "--accept-lang=zh-CN"], "已上链存证", "已上链存证: 7", "生产"),
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
    chain_rpc_url: str
    stop: Callable[[], None]


def _seed_world(database_url: str, chain_rpc_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_world(conn, chain_rpc_url)
        seed_cold_lot(conn, chain_rpc_url)


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
        # What the page's "check it yourself" asks by default: the same anvil, over CORS.
        chain_public_rpc_url=chain_rpc_url,
    )
    with (
        ConnectionPool(
            fresh_database_url, min_size=1, max_size=4, kwargs={"autocommit": True}
        ) as pool,
        app_in_thread(build_app(settings, pool), port) as app,
    ):
        yield Served(app.url, chain_rpc_url, app.stop)


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
        self.scripts: list[dict[str, str]] = []  # each <script>'s attributes
        self.css: list[str] = []  # <style> contents and style="" attributes
        self._capture: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        if tag == "script":
            self.scripts.append(values)
        for name, value in values.items():
            # The RPC field's value is an address the viewer may edit, not something loaded.
            if tag == "input" and name == "value":
                continue
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
        elif tag == "h3" and "stage" in classes:
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
            ("stage", "h3"),
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
    # One script, this site's own file: nothing inline.
    assert dom.scripts == [{"src": "/static/page.js", "defer": ""}], dom.scripts
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


# --- the cold lot in a driven browser (issue 20) -------------------------------------------------


class Cdp:
    """Just enough of the Chrome DevTools Protocol: calls, and the events seen meanwhile."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websockets.sync.client.connect(ws_url, max_size=None, open_timeout=10)
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        # A text frame: DevTools drops the connection on a binary one.
        self._ws.send(orjson.dumps({"id": self._next, "method": method, "params": params}).decode())
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            message = orjson.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") == self._next:
                assert "error" not in message, (method, message["error"])
                result: dict[str, Any] = message["result"]
                return result
            if "method" in message:
                self.events.append(message)

    def eval(self, expression: str) -> Any:
        answer = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Poll `expression` until it is truthy: the page works asynchronously (fetch, crypto)."""
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while not (value := self.eval(expression)):
            assert time.monotonic() < deadline, f"{what}: not within {BROWSER_TIMEOUT_S} s"
            time.sleep(0.1)
        return value

    def close(self) -> None:
        self._ws.close()


@contextmanager
def driven_chromium(binary: str, locale_flags: list[str], profile: Path) -> Iterator[Cdp]:
    """Headless Chromium with a DevTools socket, and a CDP session to its one page."""
    process = subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            *locale_flags,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    cdp: Cdp | None = None
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        seen = []
        while port is None:  # Chromium says where its DevTools socket listens, then runs on
            line = process.stderr.readline().decode(errors="replace")
            seen.append(line)
            assert line or process.poll() is None, "chromium exited:\n" + "".join(seen)
            assert time.monotonic() < deadline, "no DevTools socket:\n" + "".join(seen)
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(found.group(1)) if found else None
        # Drain the rest of stderr so Chromium never blocks on a full pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = orjson.loads(answer.read())
        page = next(target for target in targets if target["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            width=PHONE[0],
            height=PHONE[1],
            deviceScaleFactor=1,
            mobile=True,
        )
        cdp.call("Network.enable")
        cdp.call("Page.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _load(cdp: Cdp, url: str) -> None:
    cdp.events.clear()
    cdp.call("Page.navigate", url=url)
    cdp.wait_for(
        "document.readyState === 'complete' && location.href !== 'about:blank'", "page load"
    )


CARD_SUMMARY = """JSON.stringify([...document.querySelectorAll('li.event')].map(li => ({
  classes: [...li.classList],
  stage: li.querySelector('h3.stage').textContent.trim(),
  place: li.querySelector('.place') ? li.querySelector('.place').textContent.trim() : null,
  marks: [...li.querySelectorAll('.mark')].map(m => m.textContent.trim()),
  badge: li.querySelector('.badge').textContent.trim(),
  time: li.querySelector('time').textContent.trim(),
  timeTitle: li.querySelector('time').title,
})))"""


# WCAG 2 contrast of every visible text against the first opaque background behind it
# (transparency and opacity are not blended: an approximation, as in a Lighthouse-style audit).
LOW_CONTRAST = """(() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const behind = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const el = walker.currentNode.parentElement;
    if (!text || el.closest('[hidden], noscript, svg')) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(behind(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (!(ratio >= 4.5)) low.push([el.tagName, el.className, text.slice(0, 40), ratio.toFixed(2)]);
  }
  return JSON.stringify(low);
})()"""


def _verdict(cdp: Cdp, button: int) -> str:
    """Click a step's "check" button; the verdict the page reaches (valid or invalid)."""
    cdp.eval(
        "document.getElementById('check-verdict').dataset.verdict = '';"
        f"document.querySelectorAll('button.check')[{button}].click(); true"
    )
    verdict: str = cdp.wait_for(
        "['valid', 'invalid'].includes(document.getElementById('check-verdict').dataset.verdict)"
        " && document.getElementById('check-verdict').dataset.verdict",
        "the in-browser check's verdict",
    )
    return verdict


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_cold_lot_page_names_charts_marks_and_checks_in_the_browser(
    chromium: str, served: Served, screenshot_dir: Path, tmp_path: Path, lang: str
) -> None:
    """Names, the cold-chain chart, the trust marks and the in-browser check, at phone width;
    its screenfuls are kept as `<basetemp>/browser/cold-lot-<lang>-<n>.png` after the checks."""
    texts = TEXTS[lang]
    url = served.base_url + COLD_LOT
    with driven_chromium(chromium, LANGUAGES[lang][0], tmp_path / "profile") as cdp:
        _load(cdp, url)
        # Everything the page loaded came from its own host, and it weighs little.
        requests = [
            e["params"]["request"]["url"]
            for e in cdp.events
            if e["method"] == "Network.requestWillBeSent"
        ]
        assert requests, "no request seen"
        assert all(urlsplit(r).netloc == urlsplit(url).netloc for r in requests), requests
        weight = sum(
            e["params"]["encodedDataLength"]
            for e in cdp.events
            if e["method"] == "Network.loadingFinished"
        )
        assert 0 < weight < 100_000, f"{weight} bytes for a {STEPS}-step history"

        assert cdp.eval("document.documentElement.lang").split("-")[0] == lang
        assert cdp.eval("document.querySelectorAll('h1').length") == 1
        assert cdp.eval("document.querySelectorAll('img:not([alt])').length") == 0
        assert orjson.loads(cdp.eval(LOW_CONTRAST)) == []
        # Fits a phone: nothing wider than the viewport.
        assert cdp.eval("document.documentElement.scrollWidth") <= PHONE[0]

        cards = orjson.loads(cdp.eval(CARD_SUMMARY))
        assert len(cards) == STEPS
        # Names, not codes: the warehouse by its registered name, the GLN in small print, and
        # no link to id.gs1.org anywhere.
        stored = [card for card in cards if WAREHOUSE_NAME in (card["place"] or "")]
        assert len(stored) == 5, cards  # put away, three stock checks, shipped
        assert all(f"GLN {WAREHOUSE_GLN}" in card["place"] for card in stored)
        place = WAREHOUSE_NAME + texts["comma"] + WAREHOUSE_CITY
        assert all(card["place"].startswith(place) for card in stored), stored
        assert cdp.eval("document.querySelectorAll('a[href*=\"id.gs1.org\"]').length") == 0
        producer = cdp.eval("document.querySelector('[data-field=producer]').textContent")
        assert producer == PRODUCER_NAME  # the name maker registered, not its slug
        assert cdp.eval("document.querySelector('[data-field=best-before]').textContent") == (
            "2027-12-31"
        )
        # Times in the viewer's zone (the script), the event's own local time on hover.
        assert all("UTC+08:00" in card["timeTitle"] for card in cards), cards
        assert all("(UTC+08:00)" not in card["time"] for card in cards), cards
        # Separate marks: the chain's says only "anchored"; the evidence mark says who stands
        # behind it, and an unattested claim is never green.
        assert {card["badge"] for card in cards} == {texts["states"]["anchored"]}
        claims = [card for card in cards if "unattested" in card["classes"]]
        assert len(claims) == 2, cards
        for card in claims:
            assert card["marks"] == [
                texts["claim_by"].format(org="maker")
                + texts["colon"]
                + texts["reasons"]["unknown_site"]
            ]
            assert texts["counts"] not in card["marks"]
        green = cdp.eval(
            "[...document.querySelectorAll('li.event.unattested')].map(li =>"
            " getComputedStyle(li).borderLeftColor)"
        )
        assert "rgb(31, 138, 76)" not in green

        # The cold chain as a picture: the band, the line, the excursion marked and explained.
        assert cdp.eval("document.querySelectorAll('figure.cold-chain svg rect.band').length") == 1
        assert cdp.eval("document.querySelectorAll('svg polyline.reading').length") >= 1
        assert cdp.eval("document.querySelectorAll('svg .excursion-mark').length") == 1
        assert (
            cdp.eval("document.querySelector('svg[role=img] title').textContent")
            == (texts["cold_chain"])
        )
        explained = cdp.eval("document.querySelector('li.excursion').textContent")
        assert explained == texts["excursion"].format(
            duration=texts["minutes"].format(m=EXCURSION_MINUTES),
            value="\u22125",
            place=WAREHOUSE_NAME,
            low="\u221225",
            high="\u221215",
        )

        # Check it yourself: the RPC field holds the deployment's public node by default.
        assert cdp.eval("document.getElementById('rpc').value") == served.chain_rpc_url
        assert cdp.eval("document.getElementById('check').hidden") is False
        # tracefin's API is down from here on: the check needs only the page and the chain.
        served.stop()
        assert _verdict(cdp, 0) == "valid"
        steps = cdp.eval(
            "[...document.querySelectorAll('#check-steps li')].map(li => li.textContent)"
        )
        assert any(s.startswith(texts["check_messages"]["leaf"]) for s in steps), steps
        assert texts["check_messages"]["root_ok"] in steps, steps
        # Tampered with in the page's data: one sibling of the path changed.
        cdp.eval(
            "const b = document.querySelectorAll('button.check')[1];"
            "const bundle = JSON.parse(b.dataset.bundle);"
            "const s = bundle.audit_path[0];"
            "bundle.audit_path[0] = s.slice(0, -1) + (s.endsWith('0') ? '1' : '0');"
            "b.dataset.bundle = JSON.stringify(bundle); true"
        )
        assert _verdict(cdp, 1) == "invalid"
        steps = cdp.eval(
            "[...document.querySelectorAll('#check-steps li')].map(li => li.textContent)"
        )
        assert texts["check_messages"]["path_bad"] in steps, steps
        assert texts["check_messages"]["root_bad"] in steps, steps
        # Without a node to ask, nothing is valid (and nothing is sent to this site instead).
        cdp.eval("document.getElementById('rpc').value = ''; true")
        assert _verdict(cdp, 2) == "invalid"
        steps = cdp.eval(
            "[...document.querySelectorAll('#check-steps li')].map(li => li.textContent)"
        )
        missing = texts["check_messages"]["error"] + ": "
        assert missing + texts["check_messages"]["check_rpc_missing"] in steps, steps
        # And the untouched proof of another step is valid through the node the viewer names.
        cdp.eval(f"document.getElementById('rpc').value = '{served.chain_rpc_url}'; true")
        assert _verdict(cdp, 2) == "valid"

        # Phone screenfuls, top to bottom, for people to look at.
        height = cdp.eval("document.documentElement.scrollHeight")
        for number, top in enumerate(range(0, height, PHONE[1]), start=1):
            clip = {"x": 0, "y": top, "width": PHONE[0], "height": PHONE[1], "scale": 1}
            shot = cdp.call(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
            )
            path = screenshot_dir / f"cold-lot-{lang}-{number}.png"
            path.write_bytes(base64.b64decode(shot["data"]))
