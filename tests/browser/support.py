"""A real headless Chromium (Debian's, driven through its ChromeDriver by Selenium) on the
dashboard of a real `flowbus api`, with waits that give a busy two-core machine time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 45.0
"""Seconds an explicit wait allows: generous, since the box may be busy."""

T = TypeVar("T")

# Chromium, as the machine notes start it: headless, and nothing of its own reaching out.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def start_chromium(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


@dataclass
class Browser:
    driver: webdriver.Chrome
    base_url: str
    shots: Path

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait(self, check: Callable[[webdriver.Chrome], T], timeout: float = WAIT) -> T:
        def guarded(driver: webdriver.Chrome) -> T | None:
            try:
                return check(driver)
            except (StaleElementReferenceException, WebDriverException):
                return None

        result: T = WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(
            guarded, f"waited {timeout}s on {self.driver.current_url}"
        )
        return result

    def find(self, css: str, timeout: float = WAIT) -> WebElement:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), timeout)

    def read(self, css: str, attribute: str | None = None, timeout: float = WAIT) -> str:
        """The text (or an attribute) of the first element matching `css`, read at once: a
        live page may redraw the element at any moment."""

        def check(driver: webdriver.Chrome) -> str | None:
            element = driver.find_element(By.CSS_SELECTOR, css)
            value = element.text if attribute is None else element.get_attribute(attribute)
            return value if value is not None else None

        return self.wait(check, timeout)

    def attributes(self, css: str, attribute: str) -> list[str]:
        """One attribute of every element matching `css`, read in one script: a live page
        may swap the elements between two reads."""
        values = self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " e => e.getAttribute(arguments[1]));",
            css,
            attribute,
        )
        return [str(v) for v in values]

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text_of(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def wait_text(self, css: str, wanted: str, timeout: float = WAIT) -> WebElement:
        """The element matching `css` once its text contains `wanted`."""

        def check(driver: webdriver.Chrome) -> WebElement | None:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if wanted in element.text:
                    return element
            return None

        return self.wait(check, timeout)

    def mark_page(self) -> None:
        """Tag this page load: `same_page` tells later whether the page was reloaded."""
        self.driver.execute_script("window.__flowbusMark = 'kept';")

    def same_page(self) -> bool:
        return bool(self.driver.execute_script("return window.__flowbusMark === 'kept';"))

    def live(self, css: str = "[sse-connect]") -> None:
        """Wait until the page's live stream is open."""
        self.find(f'{css}[data-sse="open"]')

    def graph_drawn(self, css: str = "figure.graph") -> WebElement:
        return self.find(f'{css}[data-drawn="true"] svg')

    def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def screenshot_full(self, name: str, width: int = 1280) -> Path:
        """The whole page at `width`, as tall as it is."""
        height = self.driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        )
        self.driver.set_window_size(width, min(int(height) + 100, 4000))
        try:
            return self.screenshot(name)
        finally:
            self.driver.set_window_size(1280, 900)

    def click(self, css: str) -> None:
        """Click the element, found afresh until the click lands (a live page may redraw
        it between finding and clicking)."""

        def clicked(driver: webdriver.Chrome) -> bool:
            element = driver.find_element(By.CSS_SELECTOR, css)
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
            element.click()
            return True

        self.wait(clicked)

    def fill(self, css: str, text: str) -> None:
        def filled(driver: webdriver.Chrome) -> bool:
            element = driver.find_element(By.CSS_SELECTOR, css)
            element.clear()
            element.send_keys(text)
            return element.get_attribute("value") == text

        self.wait(filled)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)


def eventually(check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll `check` (outside the browser) until it gives something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.2)
