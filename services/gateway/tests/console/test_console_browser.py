"""The web console in a real headless Chromium against the whole stack (NGINX, two gateways, worker).

Each test leaves a screenshot of its view under ``reports/console/`` (the CI artefact). The browser
is Debian's ``chromium`` driven by Playwright's library: nothing here downloads a browser.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[4] / "reports" / "console"
TIMEOUT_MS = 30_000

PASSAGES = {
    "handbook": "Employees get twenty-five vacation days per year. Unused days expire in March.",
    "security": "API keys are rotated every ninety days. Lost keys must be revoked at once.",
}

# Closes the chat socket the first time a token arrives, as a flaky network would, so the test
# sees the console reconnect and resume the answer. Registered before the console's own listener.
DROP_ON_FIRST_TOKEN = """
window.__tokensBeforeDrop = 0;
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    if (!String(args[0]).includes("/v1/chat/ws")) return;
    this.addEventListener("message", (event) => {
      if (JSON.parse(event.data).type === "token" && !window.__dropped) {
        window.__tokensBeforeDrop += 1;
        window.__dropped = true;
        this.close();
      }
    });
  }
};
"""

if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed: `make deps` (tools/bootstrap.sh) installs Debian's chromium",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = DevstackSettings.on_free_ports(tmp_path_factory.mktemp("console-stack"))
    running = Stack(settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    """A key made by the gateway's CLI, and a few passages indexed in its tenant's default collection."""
    chunks = [
        {"id": f"{doc}:0", "document_id": doc, "text": text, "position": 0, "metadata": {}}
        for doc, text in PASSAGES.items()
    ]
    upsert = httpx.post(
        f"http://127.0.0.1:{stack.settings.retrieval_port}/internal/v1/collections/default/upsert",
        json={"chunks": chunks},
        timeout=60,
    )
    assert upsert.status_code == 200, upsert.text
    return stack.create_api_key()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


ConsoleOpener = Callable[..., Page]


@pytest.fixture
def open_console(browser: Browser, stack: Stack, api_key: str) -> Iterator[ConsoleOpener]:
    """Open the console on a view in a fresh browser context, connected with the key."""
    contexts: list[BrowserContext] = []

    def open_view(view: str, init_script: str = "") -> Page:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        if init_script:
            page.add_init_script(init_script)
        page.goto(f"{stack.url}/console/#{view}")
        page.get_by_label("API key").fill(api_key)
        page.get_by_role("button", name="Connect", exact=True).click()
        expect(page.locator("#status")).to_contain_text("Connected")
        expect(page.get_by_label("Collection")).to_have_value("default")
        return page

    yield open_view
    for context in contexts:
        context.close()


def screenshot(page: Page, view: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{view}.png", full_page=True)


def run_search(page: Page, query: str) -> None:
    page.get_by_label("Query").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()


def test_search_shows_scored_results_and_the_cache_tier(open_console: ConsoleOpener) -> None:
    page = open_console("search")
    page.get_by_label("Mode").select_option("hybrid")
    run_search(page, "how many vacation days")
    expect(page.locator(".result").first.locator(".document-id")).to_have_text("handbook")
    expect(page.locator(".result .score").first).to_contain_text("score ")
    expect(page.get_by_test_id("x-cache")).to_have_text("miss")

    run_search(page, "how many vacation days")  # the same query again: answered by a cache tier
    expect(page.get_by_test_id("x-cache")).to_have_text(re.compile(r"^hit-(edge|l1|l2)$"))
    expect(page.locator("#search-history tr")).to_have_count(2)
    screenshot(page, "search")

    page.get_by_label("Top k").fill("500")  # the browser's own validation names the field
    run_search(page, "vacation")
    assert page.get_by_label("Top k").evaluate("input => !input.checkValidity()")


def test_chat_streams_an_answer_with_sources_and_resumes_after_a_drop(open_console: ConsoleOpener) -> None:
    page = open_console("chat", init_script=DROP_ON_FIRST_TOKEN)
    expect(page.locator("#chat-connection")).to_have_text("connected")
    page.get_by_label("Message").fill("How many vacation days do employees get?")
    page.get_by_label("Message").press("Enter")

    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".answer")).to_contain_text("twenty-five")
    expect(answer.locator(".source").first).to_contain_text("handbook")
    expect(answer.locator(".note.resumed")).to_contain_text("resumed after event")
    assert page.evaluate("window.__tokensBeforeDrop") == 1
    expect(page.locator("#chat-session")).to_contain_text("session ")
    screenshot(page, "chat")


def test_upload_completes_and_shows_the_job(open_console: ConsoleOpener, tmp_path: Path) -> None:
    document = tmp_path / "remote-work.md"
    document.write_text("# Remote work\n\nStaff may work remotely up to three days a week.\n")
    page = open_console("upload")
    page.locator("#files").set_input_files(document)
    expect(page.locator("#upload-files")).to_contain_text("remote-work.md")
    page.get_by_role("button", name="Upload").click()

    job = page.locator(".job").first
    expect(job).to_have_attribute("data-state", "succeeded", timeout=60_000)
    expect(job.locator(".job-state")).to_contain_text("1 of 1 document(s) done")
    expect(job.locator(".job-documents")).to_contain_text("remote-work.md: succeeded")
    screenshot(page, "upload")


def test_stats_update_every_few_seconds(open_console: ConsoleOpener) -> None:
    page = open_console("search")
    run_search(page, "API key rotation")
    expect(page.locator(".result").first).to_be_visible()

    page.get_by_role("tab", name="Live stats").click()
    stats = page.locator("#view-stats")
    expect(stats).to_have_attribute("data-updates", "2", timeout=10_000)
    expect(page.locator("#stats-routes")).to_contain_text("POST /v1/search")
    expect(page.locator("#cache-text")).to_contain_text("Searches through this replica")
    expect(page.locator("#in-flight-text")).to_contain_text(
        re.compile(r"WebSockets [1-9]")
    )  # this feed, at least
    assert page.locator("#chart-in-flight polyline").count() == 3
    screenshot(page, "stats")


def test_a_refused_key_is_explained(browser: Browser, stack: Stack) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.url}/console/")
    page.get_by_label("API key").fill("rfk_000000000000_not-a-key")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("the API key is not valid (invalid_api_key, HTTP 401)")
    context.close()
