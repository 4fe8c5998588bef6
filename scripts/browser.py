"""Headless Chromium through Selenium, for the explorer's screenshot and tests.

The browser and its driver are Debian's packages ``chromium`` and
``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``), or
the programs named by ``$VAE_CHROMIUM`` and ``$VAE_CHROMEDRIVER``. Selenium
is given the driver's path, so its Selenium Manager, which would download a
browser or a driver, never runs; and the browser is started with its
background network traffic (updates, sync, QUIC, first-run pages) off.
Selenium is imported only when a browser starts.
"""
import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile

from vae.atomic import atomic_path

CHROMIUM_ENV, CHROMEDRIVER_ENV = 'VAE_CHROMIUM', 'VAE_CHROMEDRIVER'
INSTALL_HINT = ('install Debian\'s chromium and chromium-driver (apt-get '
                'install chromium chromium-driver), or name the programs in '
                '$%s and $%s' % (CHROMIUM_ENV, CHROMEDRIVER_ENV))

#: Chromium's switches: headless, as root (no sandbox: a root process may
#: not use Chromium's), and without any traffic of its own.
CHROMIUM_FLAGS = (
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--no-default-browser-check',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-extensions', '--disable-dev-shm-usage',
    '--hide-scrollbars', '--force-device-scale-factor=1',
)


class BrowserMissing(RuntimeError):
    """Chromium, its driver or Selenium is not installed."""


def find_browser():
    """``(chromium, chromedriver)``: the paths of the two programs.

    Raises:
        BrowserMissing: naming what is missing and how to install it.
    """
    found = []
    for env, names in ((CHROMIUM_ENV, ('chromium', 'chromium-browser')),
                       (CHROMEDRIVER_ENV, ('chromedriver',))):
        path = os.environ.get(env) or next(
            (p for p in map(shutil.which, names) if p), None)
        if not path or not os.access(path, os.X_OK):
            raise BrowserMissing('%s not found; %s' % (names[0], INSTALL_HINT))
        found.append(path)
    try:
        import selenium  # NOQA: F401
    except ImportError:
        raise BrowserMissing('selenium is not installed; pip install -e '
                             '".[web]"')
    return tuple(found)


@contextlib.contextmanager
def headless_chromium(width=1280, height=900):
    """A Selenium ``WebDriver`` of a fresh headless Chromium.

    It records the console (``driver.get_log('browser')``) and the DevTools
    network events (``driver.get_log('performance')``; see
    :func:`network_requests`). A new empty profile in a temporary folder
    is used and removed afterwards.
    """
    chromium, chromedriver = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix='vae-chromium-') as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument('--user-data-dir=%s' % profile)
        options.add_argument('--window-size=%d,%d' % (width, height))
        options.set_capability('goog:loggingPrefs',
                               {'browser': 'ALL', 'performance': 'ALL'})
        service = Service(executable_path=chromedriver,
                          log_output=subprocess.DEVNULL)
        driver = webdriver.Chrome(service=service, options=options)
        try:
            set_viewport(driver, width, height)
            yield driver
        finally:
            driver.quit()


def set_viewport(driver, width, height):
    """Make the page's viewport ``width`` x ``height`` CSS pixels.

    Headless Chromium keeps its window at least 500 pixels wide; DevTools'
    device metrics override sets the viewport itself (a phone's, say).
    """
    driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
        'width': width, 'height': height, 'deviceScaleFactor': 1,
        'mobile': False})


def file_url(path):
    """The file:// URL of a local file."""
    import pathlib
    return pathlib.Path(os.path.abspath(path)).as_uri()


def network_requests(performance_log):
    """URLs of the requests in entries of ``driver.get_log('performance')``."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry['message'])['message']
        if message.get('method') == 'Network.requestWillBeSent':
            urls.append(message['params']['request']['url'])
    return urls


def console_errors(browser_log):
    """Messages of level SEVERE in entries of ``driver.get_log('browser')``."""
    return [entry['message'] for entry in browser_log
            if entry.get('level') == 'SEVERE']


def screenshot(driver, path, full_page=False):
    """Save what ``driver`` shows as a PNG at ``path`` (atomically).

    Args:
        full_page (bool): The whole page, not only the window.
    """
    if full_page:
        shot = driver.execute_cdp_cmd('Page.captureScreenshot', {
            'format': 'png', 'captureBeyondViewport': True})
        png = base64.b64decode(shot['data'])
    else:
        png = driver.get_screenshot_as_png()
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(png)
    return path
