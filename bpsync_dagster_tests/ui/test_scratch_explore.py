import time, json
from pathlib import Path
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from bpsync_dagster_tests.support.webserver import Webserver

def test_explore(make_node, tmp_path):
    node = make_node("posix", "posix")
    ds = node.dataset_id("ui")
    node.add_dataset(ds, [("a.c4gh", b"a"*100), ("b.c4gh", b"b"*200)])
    r = node.bpsync("sync", ds)
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.split(" run ", 1)[1].split()[0]
    t = time.monotonic()
    with Webserver(node.environment(), tmp_path / "web.log") as web:
        print("webserver up", time.monotonic() - t)
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync".split():
            o.add_argument(a)
        o.add_argument(f"--user-data-dir={tmp_path/'profile'}")
        o.add_argument("--window-size=1600,1200")
        d = webdriver.Chrome(options=o, service=Service("/usr/bin/chromedriver"))
        try:
            d.get(f"{web.url}/runs")
            time.sleep(8)
            d.save_screenshot("/tmp/explore_runs.png")
            Path("/tmp/explore_runs.txt").write_text(d.find_element("tag name", "body").text)
            d.get(f"{web.url}/runs/{run_id}")
            time.sleep(10)
            d.save_screenshot("/tmp/explore_run.png")
            Path("/tmp/explore_run.txt").write_text(d.find_element("tag name", "body").text)
            Path("/tmp/explore_run.html").write_text(d.page_source)
        finally:
            d.quit()
