"""A run started by `bpsync sync` as an operator sees it in the Dagster UI, in a real headless Chromium.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver). With
`BPSYNC_SAVE_SCREENSHOTS=1` the run page's screenshot is also written to `docs/images/run-page.png`
for the README.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bpsync_dagster.jobs.audit_sync import audit_sync
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster_tests.support.environment import PROJECT_ROOT, SDA_DB_DATASETS_USER, Node
from bpsync_dagster_tests.support.webserver import graphql

CHROMIUM = Path(os.environ.get("BPSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("BPSYNC_CHROMEDRIVER", "/usr/bin/chromedriver"))
SAVE_SCREENSHOTS = os.environ.get("BPSYNC_SAVE_SCREENSHOTS") == "1"
README_SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "run-page.png"
WAIT_SECONDS = 30


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile; a missing browser fails the test, it is not skipped."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"the UI tests need Chromium and its driver, missing: {', '.join(missing)}; "
            "install them with `apt-get install -y chromium chromium-driver`",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1920,1200",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    )
    yield driver
    driver.quit()


def _wait_for_texts(driver: WebDriver, texts: list[str], what: str, within: str = "body") -> str:
    """The visible text of the first `within` element once it holds every one of `texts`."""

    def shown(driver: WebDriver) -> str | bool:
        try:
            text = driver.find_element(By.CSS_SELECTOR, within).text
        except Exception:  # not rendered yet, or re-rendered while read
            return False
        return text if all(item in text for item in texts) else False

    try:
        return WebDriverWait(driver, WAIT_SECONDS).until(shown)
    except TimeoutException:
        missing = [item for item in texts if item not in driver.find_element(By.TAG_NAME, "body").text]
        raise AssertionError(f"{what}: not shown after {WAIT_SECONDS} s: {missing}") from None


def _click(driver: WebDriver, by: str, selector: str, what: str) -> None:
    try:
        WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.find_element(by, selector).is_displayed())
        driver.find_element(by, selector).click()
    except TimeoutException:
        raise AssertionError(f"{what} ({selector}) not shown after {WAIT_SECONDS} s") from None


def _lines_of_cells(driver: WebDriver, columns: list[str]) -> dict[str, set[int]]:
    """For each named column of the dialog's `files` table, the numbers of lines its cells' texts are
    rendered on (1: not wrapped)."""
    script = """
        const table = [...document.querySelectorAll('[role="dialog"] table')].find(
            (candidate) => [...candidate.querySelectorAll(':scope > thead th, :scope > tr > th')].length > 0
                && candidate.querySelector('th').textContent === 'accession_id');
        const headers = [...table.querySelectorAll('th')].map((th) => th.textContent);
        const lines = {};
        for (const name of arguments[0]) {
            const index = headers.indexOf(name);
            lines[name] = [...table.querySelectorAll('tbody tr, tr')].map((row) => row.children[index])
                .filter((cell) => cell && cell.tagName === 'TD')
                .map((cell) => { const range = document.createRange(); range.selectNodeContents(cell);
                                 return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size; });
        }
        return lines;
    """
    return {name: set(counts) for name, counts in driver.execute_script(script, columns).items()}


def test_a_cli_run_shows_its_dataset_and_per_file_metadata_in_the_ui(
    ui_node: Node, start_webserver, browser: WebDriver, tmp_path: Path
) -> None:
    node = ui_node
    dataset_id = node.dataset_id("ui")
    files = node.add_dataset(dataset_id, [(f"slide-{index}.c4gh", os.urandom(2000 + index)) for index in range(3)])
    synced = node.sync_mapped(dataset_id)
    assert synced.returncode == 0, synced.stderr
    run_id = synced.stdout.split(" run ", 1)[1].split()[0]

    webserver = start_webserver(node)
    # The "Join the Dagster community" dialog opens over the UI on 127.0.0.1 until it was dismissed once.
    graphql(webserver.url, "mutation { setNuxSeen }")

    browser.get(f"{webserver.url}/runs")
    _wait_for_texts(browser, [run_id[:8], f"dataset_id: {dataset_id}", "Success"], "the runs page")
    browser.save_screenshot(str(tmp_path / "runs.png"))

    browser.get(f"{webserver.url}/runs/{run_id}")
    _wait_for_texts(browser, [run_id[:8], "Success", "sync_dataset", "RUN_SUCCESS"], "the run page")
    # Selecting the step in the timeline filters the event log to it, as the README tells operators.
    _click(
        browser,
        By.CSS_SELECTOR,
        '.box[data-tooltip="synced_dataset.copy_files[0]"]',
        "the copy_files[0] step in the timeline",
    )
    _wait_for_texts(
        browser,
        ['Yielded output "result" of type "[CopyOutcome]"', "files_copied", "files_skipped", "bytes_copied"],
        "the copy_files output in the event log",
    )
    # The row shows the table's first lines; its "View full message" dialog shows every file.
    _click(
        browser,
        By.XPATH,
        '//*[contains(text(), "[CopyOutcome]")]/ancestor::*[.//button[.//*[text()="View full message"]]][1]'
        '//button[.//*[text()="View full message"]]',
        "the copy_files output's View full message button",
    )
    dialog = _wait_for_texts(
        browser,
        ["accession_id", "destination", "action", "bytes", "seconds", "MB/s", *[f.accession_id for f in files]],
        "the copy_files metadata dialog",
        within='[role="dialog"]',
    )
    lines = dialog.splitlines()
    assert "files_copied 3" in lines and "files_skipped 0" in lines, dialog
    rows = {line.split()[0]: [*line.split()[1:4], line.split()[5]] for line in lines if line.startswith(dataset_id)}
    # Files of 2 kB: their copy time is overhead, no rate.
    assert rows == {
        item.accession_id: [str(node.sync_dir / item.path), "copy", str(len(node.synced_object(item.path))), "—"]
        for item in files
    }, dialog
    assert _lines_of_cells(browser, ["action", "MB/s", "checksum"]) == {"action": {1}, "MB/s": {1}, "checksum": {1}}
    browser.save_screenshot(str(tmp_path / "run-page.png"))
    if SAVE_SCREENSHOTS:
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "run-page.png", README_SCREENSHOT)


def test_the_asset_catalog_lists_synced_datasets_with_their_audit(
    ui_node: Node, start_webserver, browser: WebDriver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    node = ui_node
    node.database_user = SDA_DB_DATASETS_USER  # the audit lists the local datasets
    node.extra_env = {"SYNC_CENTERPREFIX": f"SYNC-{node.prefix}-"}
    synced, drifted = node.dataset_id("catalog-a"), node.dataset_id("catalog-b")
    paths = {}
    for dataset_id in (synced, drifted):
        (item,) = node.add_dataset(dataset_id, [(f"{dataset_id[-9:]}/one.c4gh", os.urandom(1500))])
        paths[dataset_id] = node.sync_dir / item.path
        assert node.sync_mapped(dataset_id).returncode == 0
    paths[drifted].unlink()
    instance = node.configure_this_process(monkeypatch)
    assert audit_sync.execute_in_process(instance=instance, resources=RESOURCES).success

    webserver = start_webserver(node)
    graphql(webserver.url, "mutation { setNuxSeen }")
    browser.get(f"{webserver.url}/assets/synced_dataset?view=partitions")
    _wait_for_texts(browser, ["synced_dataset", synced, drifted], "the synced_dataset partitions")
    browser.save_screenshot(str(tmp_path / "inventory.png"))
    browser.get(f"{webserver.url}/assets/synced_dataset?view=checks")
    _wait_for_texts(browser, ["matches_sda_database"], "the synced_dataset checks")
    browser.save_screenshot(str(tmp_path / "audit.png"))
    if SAVE_SCREENSHOTS:
        for name in ("inventory.png", "audit.png"):
            shutil.copy(tmp_path / name, README_SCREENSHOT.parent / name)
