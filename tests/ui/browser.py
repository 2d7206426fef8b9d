"""A real headless Chromium (Debian's chromium and chromium-driver) driven by selenium.

Nothing is downloaded: the browser and its driver are the system's (scripts/setup installs them),
Selenium Manager is kept offline, and Chromium's own background traffic (updates, sync, field
trials) is switched off, since this machine has no network beyond loopback.
"""

from __future__ import annotations

import os
import shutil
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def start(user_data_dir: str, width: int = 1280, height: int = 800) -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            raise RuntimeError(f"{path} is missing: scripts/setup installs Debian's chromium and chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a driver online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", f"--user-data-dir={user_data_dir}",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    # The dashboard's certificate is signed by the control plane's own CA, which this fresh profile
    # does not hold; the tests check the certificate against that CA themselves (test_tls).
    opts.accept_insecure_certs = True
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait(driver, cond, timeout: float = 30.0, what: str = "condition"):
    """Poll cond(driver) until truthy (page reloads in between are fine)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = cond(driver)
            if value:
                return value
        except WebDriverException as e:
            last = e
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" ({last!r})" if last else "")
                         + f"\nat {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:3000]}")


def texts(driver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]
