"""A page as a real browser shows it: Debian's headless Chromium driven by Selenium (`make browser`
installs both; nothing is downloaded at run time)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def rendered(page: str | Path) -> dict:
  """Opens the local file `page` and returns what loaded: its title, its h2 headings, and per image its
  alt text and natural width (0: the image did not load)."""
  if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.fail("Chromium and its WebDriver are missing: run `make browser`")
  os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a driver
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    driver.get(Path(page).resolve().as_uri())
    driver.execute_async_script(  # every image decoded (or failed) before it is measured
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(done);")
    return {"title": driver.title,
            "headings": driver.execute_script("return [...document.querySelectorAll('h2')].map(h => h.textContent);"),
            "images": driver.execute_script("return [...document.images].map(i => [i.alt, i.naturalWidth]);")}
  finally:
    driver.quit()
