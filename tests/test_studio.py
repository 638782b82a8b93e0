"""The web studio at `/` in a real headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium) against the real API and a real worker (tiny catalog). Screenshots of every test
land in its tmp dir; STUDIO_README_SCREENSHOT=docs/studio.png also writes the README's one."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FORMATS = ("wav", "flac", "mp3", "ogg", "opus")


def _options(profile: Path, downloads: Path, width: int = 1280, height: int = 1000):
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(flag)
    opts.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1,
        },
    )
    return opts


@pytest.fixture
def browser_factory(tmp_path):
    """``browser_factory(width, height)``: a fresh Chromium (own profile); all quit after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup.sh")
    started = []

    def start(width: int = 1280, height: int = 1000):
        n = len(started)
        downloads = tmp_path / f"downloads-{n}"
        downloads.mkdir()
        driver = webdriver.Chrome(
            service=Service(CHROMEDRIVER), options=_options(tmp_path / f"profile-{n}", downloads, width, height)
        )
        driver.set_script_timeout(60)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.downloads = downloads
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


@pytest.fixture
def browser(browser_factory):
    return browser_factory()


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver, condition, timeout: float = 60, what: str = "condition"):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,  # lists re-render while they are read
        ignored_exceptions=[StaleElementReferenceException],
    ).until(condition, message=f"waited for {what}")


def open_studio(driver, api_url: str, key: str | None, page: str = "generate") -> None:
    driver.get(api_url + "/")
    if key is not None:
        driver.execute_script("localStorage.setItem('soundbox.apiKey', arguments[0])", key)
    driver.get(f"{api_url}/#{page}")
    driver.refresh()
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"), what="the studio to load")


def audio_can_play(driver, element_id: str, timeout: float = 60) -> dict:
    """Wait until the <audio> reaches canplay (readyState ≥ 3); its duration and readyState."""
    return driver.execute_async_script(
        """
        const [id, done] = [arguments[0], arguments[arguments.length - 1]];
        const a = document.getElementById(id);
        const report = () => done({readyState: a.readyState, duration: a.duration, src: a.currentSrc, error: a.error && a.error.code});
        if (a.readyState >= 3) return report();
        a.addEventListener('canplay', report, {once: true});
        a.addEventListener('error', report, {once: true});
    """,
        element_id,
    )


def test_the_studio_is_served_at_the_root_with_its_modules(api_url):
    page = httpx.get(api_url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="studio/js/app.js"' in page.text and "cdn" not in page.text.lower()
    for path in (
        "/studio/studio.css",
        "/studio/js/app.js",
        "/studio/js/api.js",
        "/studio/js/generate.js",
        "/studio/js/speech.js",
        "/studio/js/library.js",
    ):
        resp = httpx.get(api_url + path)
        assert resp.status_code == 200, path
        assert "http://" not in resp.text and "https://" not in resp.text, f"{path} refers to another site"
    missing = httpx.get(api_url + "/v1/no-such-route")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(api_url + "/docs").status_code == 200  # the API's own pages still win


def test_the_key_field_persists_across_reloads(browser, api_url, api_key, tmp_path):
    from selenium.webdriver.common.by import By

    open_studio(browser, api_url, None)
    assert "anonymous" in browser.find_element(By.ID, "key-state").text
    field = browser.find_element(By.ID, "api-key")
    field.send_keys(api_key)
    browser.find_element(By.ID, "key-save").click()
    wait(
        browser,
        lambda d: d.execute_script(
            "return document.body.dataset.ready === '1' && document.getElementById('api-key').value !== ''"
        ),
        what="reload",
    )
    browser.refresh()
    wait(browser, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == api_key
    assert browser.execute_script("return localStorage.getItem('soundbox.apiKey')") == api_key
    assert "saved" in browser.find_element(By.ID, "key-state").text
    shot(browser, tmp_path, "key")


def test_without_a_key_a_protected_server_says_so(browser, api_url, tmp_path):
    from selenium.webdriver.common.by import By

    open_studio(browser, api_url, None, "speech")
    wait(browser, lambda d: "API key" in d.find_element(By.ID, "speech-error").text, what="the 401 message")
    shot(browser, tmp_path, "no-key")


def test_the_studio_works_with_anonymous_access(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.conftest import start_api

    url, proc = start_api({"SOUNDBOX_ALLOW_ANONYMOUS": "true"})
    try:
        open_studio(browser, url, None, "speech")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#voice option"), what="the voices, anonymously")
        assert "anonymous" in browser.find_element(By.ID, "key-state").text
        assert browser.find_element(By.ID, "speech-error").text == ""
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_control_has_a_label_and_a_phone_sized_window_fits(browser_factory, api_url, api_key, tmp_path):
    driver = browser_factory(390, 844)
    for page in ("generate", "speech", "library"):
        open_studio(driver, api_url, api_key, page)
        unlabeled = driver.execute_script("""
            return [...document.querySelectorAll('input, select, textarea, button')]
              .filter(e => e.offsetParent !== null || e.closest('section:not([hidden])'))
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
              .map(e => e.id || e.outerHTML.slice(0, 60));""")
        assert unlabeled == [], f"{page}: controls without a label: {unlabeled}"
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page} is {overflow}px wider than a phone"
        shot(driver, tmp_path, f"phone-{page}")
    # keyboard: Tab from the start reaches the skip link, then the navigation
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_studio(driver, api_url, api_key)
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("class") == "skip"
    ActionChains(driver).send_keys(Keys.TAB, Keys.TAB, Keys.ENTER).perform()  # brand is not focusable: Speech
    wait(driver, lambda d: d.execute_script("return !document.getElementById('speech').hidden"), what="keyboard nav")


def test_prompt_guidance_shows_as_you_type(browser, api_url, api_key, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    auth = {"Authorization": f"Bearer {api_key}"}
    check = httpx.post(f"{api_url}/v1/prompts/check", json={"prompt": "nice music", "model": "music"}, headers=auth)
    assert check.status_code == 200, check.text
    open_studio(browser, api_url, api_key)
    Select(browser.find_element(By.ID, "model")).select_by_value("music")
    browser.find_element(By.ID, "prompt").send_keys("nice music")
    expected = httpx.post(
        f"{api_url}/v1/prompts/check", json={"prompt": "nice music", "model": "music"}, headers=auth
    ).json()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt-warnings li.warning"), what="a warning")
    codes = [
        e.get_attribute("data-code") for e in browser.find_elements(By.CSS_SELECTOR, "#prompt-warnings li.warning")
    ]
    assert codes == [w["code"] for w in expected["warnings"]] and "too_vague" in codes
    shot(browser, tmp_path, "prompt-warning")
    prompt = browser.find_element(By.ID, "prompt")
    prompt.clear()
    Select(browser.find_element(By.ID, "model")).select_by_value("auto")
    prompt.send_keys('say "Ready, player one"')
    wait(browser, lambda d: d.find_elements(By.ID, "prompt-model"), what="the auto model choice")
    assert browser.find_element(By.ID, "prompt-model").text.startswith("Model: voice")


def test_cancel_from_the_studio(browser, api_url, api_key, tmp_path, idle_queues):
    """No worker runs: the job waits, shows the queue, and the Cancel button cancels it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_studio(browser, api_url, api_key)
    browser.find_element(By.ID, "prompt").send_keys("a job nobody will run")
    Select(browser.find_element(By.ID, "model")).select_by_value("magnet")
    duration = browser.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("10")  # MAGNeT's fixed length
    browser.find_element(By.ID, "gen-submit").click()
    wait(browser, lambda d: "queue" in d.find_element(By.ID, "job-queue").text, what="the queue position")
    browser.find_element(By.ID, "gen-cancel").click()
    wait(browser, lambda d: d.find_element(By.ID, "job-status").text == "canceled", what="the cancellation")
    assert "canceled" in browser.find_element(By.ID, "gen-error").text
    shot(browser, tmp_path, "canceled")


def test_bad_input_names_the_field(browser, api_url, api_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_studio(browser, api_url, api_key)
    browser.find_element(By.ID, "prompt").send_keys("too long for magnet")
    Select(browser.find_element(By.ID, "model")).select_by_value("magnet")
    duration = browser.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("99")
    browser.find_element(By.ID, "gen-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "gen-error").text, what="the error")
    assert "duration" in browser.find_element(By.ID, "gen-error").text


def test_generate_shows_progress_then_plays_the_result(browser, api_url, api_key, module_worker, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_studio(browser, api_url, api_key)
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("warm analog synth pad, slow, dreamy")
    Select(browser.find_element(By.ID, "model")).select_by_value("music")
    duration = browser.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("4")
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "gen-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "job-id").text, what="the job to be queued")
    job_id = browser.find_element(By.ID, "job-id").text
    seen, statuses = [], set()
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        value = float(browser.find_element(By.ID, "job-progress").get_attribute("value") or 0)
        statuses.add(browser.find_element(By.ID, "job-status").text)
        if not seen or value != seen[-1]:
            seen.append(value)
        if len(seen) == 3:
            shot(browser, tmp_path, "progress")
        if browser.find_element(By.ID, "job-status").text in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    assert browser.find_element(By.ID, "job-status").text == "succeeded", browser.find_element(By.ID, "gen-error").text
    final = float(browser.find_element(By.ID, "job-progress").get_attribute("value"))  # read after the status
    if final != seen[-1]:
        seen.append(final)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0 < v < 1 for v in seen), f"progress never moved between 0 and 1: {seen}"
    assert "running" in statuses
    log = browser.find_element(By.ID, "job-log").text
    assert "job.progress" in log and "job.succeeded" in log

    wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed(), what="the result")
    state = audio_can_play(browser, "result-audio")
    assert state["error"] is None and state["readyState"] >= 3, state
    job = httpx.get(f"{api_url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert abs(state["duration"] - job["result"]["duration"]) < 0.1
    wait(
        browser,
        lambda d: d.execute_script("return document.getElementById('waveform').dataset.points"),
        what="the waveform",
    )
    lit = browser.execute_script("""
        const c = document.getElementById('waveform'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 100) n++; return n;""")
    assert lit > 1000, "the waveform canvas is empty"
    wait(
        browser,
        lambda d: d.execute_script(
            "const i = document.getElementById('result-spectrogram'); return i.complete && i.naturalWidth"
        ),
        what="spectrogram",
    )
    assert browser.execute_script("return document.getElementById('result-spectrogram').naturalWidth") == 1000
    score = browser.find_element(By.ID, "quality-score").text
    assert f"Score {job['result']['quality']['score']:.0f}" in score
    rows = browser.find_elements(By.CSS_SELECTOR, "#result-attempts tbody tr")
    assert len(rows) == len(job["attempt_history"]) >= 1
    kept = [r.text for r in rows if "kept" in r.text]
    assert len(kept) == 1 and kept[0].startswith(str(next(a["attempt"] for a in job["attempt_history"] if a["kept"])))
    browser.execute_script("document.getElementById('result-audio').play()")
    wait(
        browser,
        lambda d: d.execute_script("return document.getElementById('result-audio').currentTime > 0"),
        what="playback",
    )
    browser.execute_script("document.getElementById('result-audio').pause()")

    for fmt in FORMATS:
        browser.find_element(By.CSS_SELECTOR, f'button.dl[data-format="{fmt}"]').click()

    def downloaded():
        names = [p.name for p in browser.downloads.iterdir() if not p.name.endswith(".crdownload")]
        return sorted(Path(n).suffix[1:] for n in names) == sorted(FORMATS)

    wait(browser, lambda d: downloaded(), what=f"five downloads in {browser.downloads}")
    wav = next(browser.downloads.glob("*.wav")).read_bytes()
    assert wav[:4] == b"RIFF" and next(browser.downloads.glob("*.mp3")).stat().st_size > 1000
    browser.execute_script("window.scrollTo(0, 0)")
    browser.set_window_size(1280, 1500)
    path = shot(browser, tmp_path, "generate-result")
    if os.environ.get("STUDIO_README_SCREENSHOT"):
        shutil.copy(path, ROOT / os.environ["STUDIO_README_SCREENSHOT"])


def test_speech_page_plays_a_sample_and_streams_speech(browser, api_url, api_key, tmp_path):
    from selenium.webdriver.common.by import By

    open_studio(browser, api_url, api_key, "speech")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#voice option"), what="the voices")
    voices = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#voice option")]
    assert "en_US-joe-medium" in voices
    browser.find_element(By.ID, "voice-sample").click()
    wait(browser, lambda d: "Sample" in d.find_element(By.ID, "speech-status").text, what="the sample")
    state = audio_can_play(browser, "speech-audio")
    assert state["error"] is None and state["readyState"] >= 3 and state["duration"] > 0.5, state

    text = browser.find_element(By.ID, "speech-text")
    text.clear()
    text.send_keys("The first sentence arrives early. The second one follows. And a third to finish.")
    browser.find_element(By.ID, "speak").click()
    wait(
        browser,
        lambda d: d.execute_script("return document.getElementById('speech-status').dataset.done === '1'"),
        what="the speech",
        timeout=90,
    )
    assert browser.find_element(By.ID, "speech-error").text == ""
    streamed = browser.execute_script("return document.getElementById('speech-audio').dataset.streamed === '1'")
    assert streamed, "mp3 speech did not play through MediaSource while streaming"
    assert "first audio after" in browser.find_element(By.ID, "speech-status").text
    state = audio_can_play(browser, "speech-audio")
    assert state["error"] is None and state["readyState"] >= 3, state
    wait(
        browser,
        lambda d: d.execute_script("return document.getElementById('speech-audio').currentTime > 0"),
        what="speech playback",
    )
    assert browser.find_element(By.ID, "speech-download").is_displayed()
    shot(browser, tmp_path, "speech")


def _library_routes(api_url: str, key: str) -> bool:
    return httpx.get(api_url + "/v1/sounds", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_library_search_play_rename_tag_share_delete(browser, api_url, module_worker, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.conftest import make_key

    key = make_key("studio library", "creator")
    assert _library_routes(api_url, key), "GET /v1/sounds must answer"
    auth = {"Authorization": f"Bearer {key}"}
    made = []
    for prompt in ("heavy rain on a tin roof", "crackling campfire at night"):
        job = httpx.post(
            f"{api_url}/v1/generations",
            headers={**auth, "Prefer": "wait=60"},
            timeout=90,
            json={"model": "audio", "prompt": prompt, "duration": 2},
        ).json()
        if job["status"] != "succeeded":
            job = _poll(api_url, auth, job["id"])
        made.append(job["result"]["sound_id"])
    open_studio(browser, api_url, key, "library")
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lib-results li[data-sound-id]")) == 2,
        what="both sounds listed",
    )
    box = browser.find_element(By.ID, "lib-q")
    box.send_keys("rain")
    browser.find_element(By.ID, "lib-search").click()
    wait(
        browser,
        lambda d: (
            [
                e.get_attribute("data-sound-id")
                for e in d.find_elements(By.CSS_SELECTOR, "#lib-results li[data-sound-id]")
            ]
            == [made[0]]
        ),
        what="only the rain sound",
    )
    card = browser.find_element(By.CSS_SELECTOR, f'li[data-sound-id="{made[0]}"]')
    card.find_element(By.CSS_SELECTOR, "button.play").click()
    state = audio_can_play(browser, "lib-audio")
    assert (
        state["readyState"] >= 3 and browser.find_element(By.ID, "lib-audio").get_attribute("data-sound-id") == made[0]
    )

    uid = made[0][:8]
    title = browser.find_element(By.ID, f"title-{uid}")
    title.clear()
    title.send_keys("Tin roof storm")
    browser.find_element(By.ID, f"tags-{uid}").send_keys("storm, roof")
    Select(browser.find_element(By.ID, f"vis-{uid}")).select_by_value("public")
    browser.find_element(By.CSS_SELECTOR, f'li[data-sound-id="{made[0]}"] button.save').click()
    wait(
        browser,
        lambda d: "Tin roof storm" in d.find_element(By.CSS_SELECTOR, f'li[data-sound-id="{made[0]}"] .title').text,
        what="the rename",
    )
    sound = httpx.get(f"{api_url}/v1/sounds/{made[0]}", headers=auth).json()
    assert sound["title"] == "Tin roof storm" and sorted(sound["tags"]) == ["roof", "storm"]
    assert sound["visibility"] == "public"
    shot(browser, tmp_path, "library")

    Select(browser.find_element(By.ID, "lib-scope")).select_by_value("public")
    box.clear()
    box.send_keys("storm")
    browser.find_element(By.ID, "lib-search").click()
    wait(
        browser,
        lambda d: (
            made[0]
            in [
                e.get_attribute("data-sound-id")
                for e in d.find_elements(By.CSS_SELECTOR, "#lib-results li[data-sound-id]")
            ]
        ),
        what="the shared sound in the public library",
    )

    Select(browser.find_element(By.ID, "lib-scope")).select_by_value("mine")
    box.clear()
    browser.find_element(By.ID, "lib-search").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lib-results li[data-sound-id]")) == 2)
    browser.execute_script("window.confirm = () => true")
    browser.find_element(By.CSS_SELECTOR, f'li[data-sound-id="{made[1]}"] button.delete').click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f'li[data-sound-id="{made[1]}"]'), what="the delete")
    assert httpx.get(f"{api_url}/v1/sounds/{made[1]}", headers=auth).status_code == 410  # a tombstone


def _poll(api_url: str, auth: dict, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{api_url}/v1/jobs/{job_id}", headers=auth).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            assert job["status"] == "succeeded", job
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")
