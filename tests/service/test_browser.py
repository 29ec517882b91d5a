"""The web page in a real browser: Debian's chromium + chromedriver, headless, via selenium.

A real uvicorn server (auth on) runs on 127.0.0.1 in a background thread; the page is driven like
a user would: paste the API key, upload a photo -> result cards, enrol a new instance -> recognise
it, delete it. Screenshots at desktop and phone width go to /tmp for a human to look at.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.photos import altered_views, sample_photo

from .conftest import make_config
from .helpers import ADMIN_KEY, READ_KEY, jpeg

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(tempfile.gettempdir())
WAIT = 40


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
            "apt-get install -y chromium chromium-driver"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need selenium: pip install selenium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(make_recognizer) -> Iterator[str]:
    _require_browser()
    recognizer = make_recognizer(**{"service.auth": "true", "service.admin_keys": ADMIN_KEY, "service.api_keys": READ_KEY})
    with _serving(recognizer) as base:
        yield base


@pytest.fixture(scope="module")
def faces_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A faces library (no keys) holding one person, Eileen Collins (scikit-image's astronaut)."""
    _require_browser()
    pytest.importorskip("dlib", reason="the faces extra is not installed")
    from instrec.recognizer import Recognizer

    with Recognizer(make_config(tmp_path_factory.mktemp("people"), profile="faces")) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="eileen", label="Eileen Collins")
        with _serving(recognizer) as base:
            yield base


@contextmanager
def _serving(recognizer: Any) -> Iterator[str]:
    """The recognizer's app served by uvicorn on a free local port, in a background thread: its base URL."""
    import uvicorn

    from instrec.service.app import create_app

    port = _free_port()
    app = create_app(recognizer.config, recognizer)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers={"X-API-Key": ADMIN_KEY}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("astronaut", "coffee", "rocket", "clock", "gravel"):
        photo = sample_photo(name)
        out[name] = folder / f"{name}.jpg"
        out[name].write_bytes(jpeg(photo))
        out[f"{name}-crop"] = folder / f"{name}-crop.jpg"
        out[f"{name}-crop"].write_bytes(jpeg(altered_views(photo, seed=5)["crop"]))
    return out


@pytest.fixture(scope="module")
def gallery(api: httpx.Client, files: dict[str, Path]) -> dict[str, str]:
    ids = {}
    for name, label, meta in (
        ("astronaut", "Astronaut", {"mission": "STS-41-B"}),
        ("coffee", "Coffee cup", {"shelf": "3B", "sku": "C-77"}),
        ("rocket", "Rocket", {}),
    ):
        response = api.post(
            "/v1/instances",
            data={"label": label, "metadata": json.dumps(meta)},
            files=[("images", (f"{name}.jpg", files[name].read_bytes(), "image/jpeg"))],
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


@pytest.fixture(scope="module")
def driver(server: str) -> Iterator[Any]:
    """One browser for the tests that follow a user's session through the page, in file order."""
    with _chromium() as browser:
        yield browser


@pytest.fixture
def fresh_driver(server: str) -> Iterator[Any]:
    """A browser of its own, for tests of a first visit: nothing stored, nothing left from other tests."""
    with _chromium() as browser:
        yield browser


@contextmanager
def _chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="instrec-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(WAIT)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Any, timeout: float = WAIT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visible(driver: Any, selector: str) -> Any:
    return wait_for(driver, lambda d: next((e for e in css(d, selector) if e.is_displayed()), False))


def images_loaded(driver: Any, selector: str) -> bool:
    return bool(
        driver.execute_script(
            "const imgs = [...document.querySelectorAll(arguments[0])];"
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);",
            selector,
        )
    )


def open_page(driver: Any, server: str, tab: str = "recognize") -> None:
    driver.get(f"{server}/?load={time.monotonic_ns()}#{tab}")  # a real load, not just a hash change
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def recognise_file(driver: Any, path: Path) -> None:
    driver.execute_script("document.querySelector('#verdict').hidden = true")
    css(driver, "#recognize-file")[0].send_keys(str(path))
    wait_for(
        driver,
        lambda d: css(d, "#verdict") and css(d, "#verdict")[0].is_displayed() and not css(d, "#recognize-busy")[0].is_displayed(),
    )


def test_key_panel_then_upload_shows_result_cards(driver, server, gallery, files):
    open_page(driver, server)
    key_input = visible(driver, "#key-input")  # auth is on and no key is stored yet
    driver.save_screenshot(str(SHOTS / "instrec-desktop-key.png"))
    key_input.send_keys(READ_KEY)
    css(driver, "#key-form button[type=submit]")[0].click()
    wait_for(driver, lambda d: not css(d, "#key-panel")[0].is_displayed())
    assert css(driver, "#key-state")[0].text == "Key set"

    recognise_file(driver, files["astronaut-crop"])
    wait_for(driver, lambda d: len(css(d, "#results .result-card")) == 3)
    verdict = css(driver, "#verdict")[0]
    assert "known" in verdict.get_attribute("class") and "Astronaut" in verdict.text
    first = css(driver, "#results .result-card")[0]
    assert first.get_attribute("data-instance-id") == gallery["astronaut"]
    assert "best" in first.get_attribute("class")
    assert "STS-41-B" in first.text  # metadata shown
    assert re.search(r"\b\d+ matching points", first.text)  # geometric evidence of the re-ranking
    wait_for(driver, lambda d: images_loaded(d, "#results .result-card .thumb"))  # thumbnails fetched with the key
    assert "ms on the server" in css(driver, "#timing")[0].text
    driver.save_screenshot(str(SHOTS / "instrec-desktop.png"))


def test_unknown_is_shown_with_the_nearest_candidates(driver, server, gallery, files):
    open_page(driver, server)
    recognise_file(driver, files["gravel"])
    verdict = css(driver, "#verdict")[0]
    assert "unknown" in verdict.get_attribute("class") and "Unknown" in verdict.text
    cards = css(driver, "#results .result-card")
    assert cards and all("below-threshold" in c.get_attribute("class") for c in cards)
    assert "below threshold" in cards[0].text.lower()
    wait_for(driver, lambda d: images_loaded(d, "#results .result-card .thumb"))
    driver.save_screenshot(str(SHOTS / "instrec-desktop-unknown.png"))


def test_enrol_in_the_browser_then_recognise_it(driver, server, api, gallery, files):
    open_page(driver, server, "enrol")
    # a read key cannot enrol: the page says so
    visible(driver, "#enrol-label").send_keys("Kitchen clock")
    css(driver, "#enrol-files")[0].send_keys(str(files["clock"]))
    wait_for(driver, lambda d: len(css(d, "#enrol-previews .preview")) == 1)
    css(driver, "#enrol-submit")[0].click()
    message = visible(driver, "#enrol-result")
    assert "read-only" in message.text

    driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", ADMIN_KEY)
    open_page(driver, server, "enrol")
    visible(driver, "#enrol-label").send_keys("Kitchen clock")
    css(driver, ".metadata-box summary")[0].click()
    visible(driver, "#enrol-metadata").send_keys('{"room": "kitchen"}')
    css(driver, "#enrol-files")[0].send_keys(str(files["clock"]))
    wait_for(driver, lambda d: len(css(d, "#enrol-previews .preview")) == 1)
    css(driver, "#enrol-submit")[0].click()
    wait_for(driver, lambda d: "success" in (css(d, "#enrol-result")[0].get_attribute("class") or ""))
    assert "Kitchen clock" in css(driver, "#enrol-result")[0].text
    created = api.get("/v1/instances", params={"search": "Kitchen clock"}).json()["instances"]
    assert len(created) == 1 and created[0]["metadata"] == {"room": "kitchen"}

    css(driver, "#tab-recognize")[0].click()
    recognise_file(driver, files["clock-crop"])
    wait_for(driver, lambda d: css(d, "#results .result-card"))
    first = css(driver, "#results .result-card")[0]
    assert first.get_attribute("data-instance-id") == created[0]["id"]
    assert "Kitchen clock" in first.text and "kitchen" in first.text


def test_browse_search_and_delete(driver, server, api, gallery):
    driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", ADMIN_KEY)
    open_page(driver, server, "library")
    wait_for(driver, lambda d: len(css(d, "#library-list .instance-card")) >= 3)
    wait_for(driver, lambda d: images_loaded(d, "#library-list .thumb"))
    driver.save_screenshot(str(SHOTS / "instrec-desktop-library.png"))
    css(driver, "#library-search")[0].send_keys("coffee")
    wait_for(driver, lambda d: len(css(d, "#library-list .instance-card")) == 1)
    card = css(driver, "#library-list .instance-card")[0]
    assert card.get_attribute("data-instance-id") == gallery["coffee"] and "C-77" in card.text
    card.find_element("css selector", ".delete-button").click()
    alert = wait_for(driver, lambda d: d.switch_to.alert)
    assert "Coffee cup" in alert.text
    alert.accept()
    wait_for(driver, lambda d: not css(d, "#library-list .instance-card"))
    assert "Nothing matches" in css(driver, "#library-list")[0].text
    assert api.get(f"/v1/instances/{gallery['coffee']}").status_code == 404


def test_phone_width_layout(driver, server, gallery, files):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    driver.execute_cdp_cmd("Emulation.setEmitTouchEventsForMouse", {"enabled": True, "configuration": "mobile"})
    try:
        driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", READ_KEY)
        open_page(driver, server)
        recognise_file(driver, files["rocket-crop"])
        wait_for(driver, lambda d: css(d, "#results .result-card"))
        wait_for(driver, lambda d: images_loaded(d, "#results .result-card .thumb"))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 375, f"page scrolls sideways at phone width ({width}px)"
        assert visible(driver, "label[for=recognize-camera]")  # camera capture offered on touch screens
        driver.save_screenshot(str(SHOTS / "instrec-phone.png"))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 375, "height": 2000, "deviceScaleFactor": 1, "mobile": True}
        )
        driver.save_screenshot(str(SHOTS / "instrec-phone-full.png"))
        open_page(driver, server, "enrol")
        driver.save_screenshot(str(SHOTS / "instrec-phone-enrol.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


@pytest.mark.parametrize("page, rendered", [("/docs", ".opblock"), ("/redoc", "[data-section-id^='operation']")])
def test_api_docs_render_from_the_app_alone(driver, server, page, rendered):
    """Offline networks: the docs render from the app's own files; anything else is blocked, never fetched."""
    driver.get_log("browser")  # drop earlier messages
    driver.get(f"{server}{page}")
    wait_for(driver, lambda d: len(css(d, rendered)) >= 10)
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus, e.transferSize])"
    )
    local = [e for e in entries if e[0].startswith(server)]
    assert any(url.endswith(".js") for url, _, _ in local)
    assert all(status == 200 for _, status, _ in local), local
    assert all(url.startswith(server) or url.startswith("data:") for url, _, _ in entries), entries
    errors = [m["message"] for m in driver.get_log("browser") if m["level"] == "SEVERE"]
    assert not errors, errors  # nothing asked elsewhere and refused


def test_the_best_match_is_boxed_on_the_query_photo(driver, server, gallery, files, tmp_path):
    from PIL import Image

    driver.get(f"{server}/")  # the key is stored for the page's origin
    driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", READ_KEY)
    open_page(driver, server)
    astronaut = sample_photo("astronaut")
    canvas = Image.new("RGB", (1500, 1100), (128, 128, 128))
    canvas.paste(astronaut, (600, 300))
    pasted = tmp_path / "pasted.jpg"
    pasted.write_bytes(jpeg(canvas))
    recognise_file(driver, pasted)
    box = visible(driver, "#query-frame .found-box")
    assert box.get_attribute("data-label") == "Astronaut" and "Astronaut" in box.text
    # Where it is drawn, in pixels of the photo: around the pasted region, give or take 15 % of its size.
    shown = css(driver, "#query-preview")[0].rect
    scale = canvas.width / shown["width"]
    drawn = box.rect
    left, top = (drawn["x"] - shown["x"]) * scale, (drawn["y"] - shown["y"]) * scale
    right, bottom = left + drawn["width"] * scale, top + drawn["height"] * scale
    width, height = astronaut.size
    assert abs(left - 600) < 0.15 * width and abs(right - 600 - width) < 0.15 * width, (left, right)
    assert abs(top - 300) < 0.15 * height and abs(bottom - 300 - height) < 0.15 * height, (top, bottom)
    driver.save_screenshot(str(SHOTS / "instrec-desktop-box.png"))


def test_first_visit_asks_no_stats_without_a_key_and_a_wrong_key_is_said_rejected(fresh_driver, server, gallery):
    fresh_driver.get(f"{server}/")
    fresh_driver.execute_script("localStorage.clear()")
    fresh_driver.get_log("browser")  # drop earlier messages
    open_page(fresh_driver, server)
    asked = fresh_driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in asked if "/v1/stats" in url], asked
    visible(fresh_driver, "#key-input").send_keys("not-a-key")
    css(fresh_driver, "#key-form button[type=submit]")[0].click()
    wait_for(fresh_driver, lambda d: css(d, "#key-state")[0].text == "Key rejected")
    assert "rejected" in visible(fresh_driver, "#toast").text


def test_footer_counts_are_plural_aware_and_no_toast_hides_them(fresh_driver, server, api, gallery):
    fresh_driver.get(f"{server}/")  # the key is stored for the page's origin
    fresh_driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", READ_KEY)
    open_page(fresh_driver, server)
    stats = wait_for(fresh_driver, lambda d: css(d, "#footer-stats")[0].text)
    count = api.get("/v1/stats").json()["instances"]
    assert f"{count} instance{'' if count == 1 else 's'} ·" in stats, stats
    fresh_driver.execute_script("toast('a message long enough to matter', 'error')")
    fresh_driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    toast, footer = visible(fresh_driver, "#toast").rect, css(fresh_driver, ".footer span, .footer a")
    for part in footer:
        r = part.rect
        overlaps = r["y"] < toast["y"] + toast["height"] and toast["y"] < r["y"] + r["height"]
        assert not overlaps, (r, toast)


def test_admin_page_plots_the_history_with_an_admin_key_only(fresh_driver, server, gallery, files):
    fresh_driver.get(f"{server}/")
    fresh_driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", READ_KEY)
    open_page(fresh_driver, server)
    recognise_file(fresh_driver, files["astronaut-crop"])  # something to plot
    fresh_driver.get(f"{server}/admin")
    wait_for(fresh_driver, lambda d: "admin key" in css(d, "#admin-state")[0].text)
    visible(fresh_driver, "#admin-key").send_keys(ADMIN_KEY)
    css(fresh_driver, "#admin-key-form button[type=submit]")[0].click()
    wait_for(fresh_driver, lambda d: len(css(d, "#plots svg.plot")) == 4)
    plotted = {p.get_attribute("data-plot") for p in css(fresh_driver, "#plots svg.plot")}
    assert plotted == {"Requests", "Latency", "Unknown rate", "scores"}
    assert css(fresh_driver, "svg[data-plot=Latency] polyline[data-line=p95]")[0].get_attribute("points")
    assert css(fresh_driver, "svg[data-plot=scores] rect")  # the recognition above is counted
    assert not [m for m in fresh_driver.get_log("browser") if m["level"] == "SEVERE" and "/admin" in m["message"]]
    fresh_driver.save_screenshot(str(SHOTS / "instrec-admin.png"))


def test_a_faces_library_boxes_and_names_every_face_in_the_photo(fresh_driver, faces_server, tmp_path):
    from PIL import Image

    astronaut = sample_photo("astronaut")
    group = Image.new("RGB", (astronaut.width * 3 // 2, astronaut.height), (128, 128, 128))
    group.paste(astronaut, (0, 0))
    group.paste(astronaut.resize((astronaut.width // 2, astronaut.height // 2)), (astronaut.width, astronaut.height // 4))
    photo = tmp_path / "two-faces.jpg"
    photo.write_bytes(jpeg(group))
    open_page(fresh_driver, faces_server)
    recognise_file(fresh_driver, photo)
    boxes = wait_for(fresh_driver, lambda d: len(css(d, "#query-frame .found-box")) == 2 and css(d, "#query-frame .found-box"))
    assert [box.get_attribute("data-label") for box in boxes] == ["Eileen Collins"] * 2  # largest first
    assert all("Eileen Collins" in box.text for box in boxes)
    # Each box over its own copy, in pixels of the photo: the large one on the left, the small one on the right.
    shown = css(fresh_driver, "#query-preview")[0].rect
    scale = group.width / shown["width"]
    (big_left, big_right), (small_left, small_right) = (
        ((box.rect["x"] - shown["x"]) * scale, (box.rect["x"] + box.rect["width"] - shown["x"]) * scale) for box in boxes
    )
    assert big_right <= astronaut.width <= small_left and big_right - big_left > small_right - small_left
    assert "dlib-face-resnet-v1" in wait_for(fresh_driver, lambda d: css(d, "#footer-stats")[0].text)  # its embedder named
    fresh_driver.save_screenshot(str(SHOTS / "instrec-faces.png"))


def test_the_page_and_admin_work_on_another_collection(fresh_driver, server, api, gallery, files):
    assert api.put("/v1/collections/shoes").status_code in (200, 201)
    enrolled = api.post(
        "/v1/collections/shoes/instances",
        data={"label": "Shoe rocket"},
        files=[("images", ("rocket.jpg", files["rocket"].read_bytes(), "image/jpeg"))],
    )
    assert enrolled.status_code == 201, enrolled.text
    fresh_driver.get(f"{server}/")  # the key is stored for the page's origin
    fresh_driver.execute_script("localStorage.setItem('instrec.apiKey', arguments[0])", ADMIN_KEY)
    fresh_driver.get(f"{server}/?collection=shoes#recognize")
    wait_for(fresh_driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    selector = visible(fresh_driver, "#collection")
    assert selector.get_attribute("value") == "shoes"
    assert {o.text for o in css(fresh_driver, "#collection option")} >= {"default", "shoes"}
    assert "collection shoes · 1 instance ·" in wait_for(fresh_driver, lambda d: css(d, "#footer-stats")[0].text)
    recognise_file(fresh_driver, files["astronaut-crop"])  # the astronaut is in the default collection only
    cards = wait_for(fresh_driver, lambda d: css(d, "#results .result-card"))
    assert {c.get_attribute("data-instance-id") for c in cards} == {enrolled.json()["id"]}
    wait_for(fresh_driver, lambda d: images_loaded(d, "#results .result-card .thumb"))  # from the collection's images

    css(fresh_driver, ".footer a[href='/admin']")[0].click()
    rows = wait_for(fresh_driver, lambda d: len(css(d, "#collections tbody tr")) >= 2 and css(d, "#collections tbody tr"))
    cells = {r.get_attribute("data-collection"): [c.text for c in r.find_elements("css selector", "td")] for r in rows}
    assert cells["shoes"][1] == "1" and cells["default"][1] == str(api.get("/v1/stats").json()["instances"])
    assert cells["shoes"][4].startswith(api.get("/v1/collections/shoes/stats").json()["calibration"])
    fresh_driver.save_screenshot(str(SHOTS / "instrec-admin-collections.png"))
