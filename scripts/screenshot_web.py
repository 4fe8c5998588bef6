#!/usr/bin/env python
"""Screenshot an explorer page (of scripts/export_web.py) in headless Chromium.

    python scripts/screenshot_web.py --page docs/explorer/z2/index.html \\
        --out docs/figures/explorer.png

The page is opened from disk, z is set (--z, default: the interpolation's
start, as the page opens; for a 2-D model the map overlay is turned on with
--map), and the window (--width x --height CSS pixels, or the whole page with
--full-page) is saved as a PNG. It needs Debian's chromium and
chromium-driver and Selenium (pip install -e ".[web]"); see scripts/browser.py.
"""
import argparse
import os
import sys

from vae import cli  # vae before anything imports chainer
import browser  # scripts/browser.py, beside this script


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--page', required=True,
                   help='the index.html written by export_web.py')
    p.add_argument('--out', '-o', required=True, help='the PNG to write')
    p.add_argument('--width', type=int, default=1200,
                   help='window width in CSS pixels (default %(default)s)')
    p.add_argument('--height', type=int, default=860,
                   help='window height in CSS pixels (default %(default)s)')
    p.add_argument('--z', type=float, nargs='+', metavar='Z',
                   help='the z to decode, one value per latent dimension')
    p.add_argument('--map', action='store_true',
                   help='turn the 25x25 map overlay on (2-D models)')
    p.add_argument('--full-page', action='store_true',
                   help='the whole page, not only the window')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.page):
        sys.exit('error: no page at %s' % args.page)
    cli.out_folder(os.path.dirname(os.path.abspath(args.out)))
    try:
        with browser.headless_chromium(args.width, args.height) as driver:
            driver.get(browser.file_url(args.page))
            if not driver.execute_script(
                    'return !!(window.vaeExplorer && vaeExplorer.ready)'):
                sys.exit('error: %s is not an explorer page, or its script '
                         'failed: %s' % (args.page, '; '.join(
                             browser.console_errors(
                                 driver.get_log('browser')))))
            n_latent = driver.execute_script(
                'return vaeExplorer.state().z.length')
            if args.z is not None:
                if len(args.z) != n_latent:
                    sys.exit('error: --z has %d values; the model has %d '
                             'latent dimensions' % (len(args.z), n_latent))
                driver.execute_script('vaeExplorer.setZ(arguments[0])',
                                      args.z)
            if args.map:
                if n_latent != 2:
                    sys.exit('error: --map needs a 2-D model; this one has %d '
                             'latent dimensions' % n_latent)
                driver.execute_script(
                    "document.getElementById('map-toggle').click()")
                driver.execute_script('vaeExplorer.plane.mapTile(0, 0); '
                                      'vaeExplorer.plane.redraw()')
            browser.screenshot(driver, args.out, full_page=args.full_page)
    except browser.BrowserMissing as e:
        sys.exit('error: %s' % e)
    print('wrote %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
