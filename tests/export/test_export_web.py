"""The export_web command, vae/export/explorer.py and the explorer page in a
real browser.

Tiny models are trained here for a few steps on real MNIST images
(``testutil.train_tiny``, as in tests/viz/test_figures.py) and exported with
the command's main(). Headless Chromium
(Debian's chromium and chromium-driver, through Selenium; scripts/browser.py)
opens each page from disk, and the checks go through the page itself: its
JavaScript decoder against VAE.decode in Chainer, real pointer and keyboard
events on the plane and the sliders against the decodes they should show
(read back from the page's canvases), its console and its network log.
Without the browser these tests skip, except under CI, where they fail.
"""
import html
import json
import os
import re

import chainer
import numpy
import pytest
from PIL import Image

from testutil import (BAD_MODEL_FILES, N_TRAIN, assert_one_line_error,
                      command, load_script, run_main, train_tiny,
                      unavailable)
from vae.viz import figures
from vae.eval import inference
from vae.export import explorer as explorer_lib

import browser  # NOQA: E402  (scripts/browser.py, on the path by testutil)
from vae.model import ACTIVATIONS, VAE
from vae.train.model_files import save_model

export_web = command('export_web')
screenshot_web = load_script('screenshot_web')

N_Z = 12  # z decoded by the page and by Chainer


def page_json(path):
    """The data block of an exported page."""
    text = open(path, encoding='utf-8').read()
    match = re.search(r'<script type="application/json" id="vae-data">'
                      r'(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def export(model, directory, mnist_dir, dtype):
    model_path = directory / 'model.npz'
    save_model(model_path, model)
    out = directory / ('site_' + dtype)
    rc, printed = run_main(export_web, [
        '--model', str(model_path), '--out', str(out), '--data-dir',
        mnist_dir, '--dtype', dtype, '--no-progress'])
    assert rc == 0
    return out / 'index.html', printed


@pytest.fixture(scope='module')
def test_set(mnist):
    return mnist[1]


@pytest.fixture(scope='module')
def model2d(mnist):
    return train_tiny(mnist[0].images[:N_TRAIN], n_latent=2)


@pytest.fixture(scope='module')
def model3d():
    """Untrained, with another activation than the trained one's."""
    numpy.random.seed(3)
    return VAE(784, 3, 16, 'elu')


@pytest.fixture(scope='module')
def page2d(model2d, tmp_path_factory, mnist_dir):
    return export(model2d, tmp_path_factory.mktemp('web2d'), mnist_dir,
                  'float32')


@pytest.fixture(scope='module')
def page2d_half(model2d, tmp_path_factory, mnist_dir):
    return export(model2d, tmp_path_factory.mktemp('web2d16'), mnist_dir,
                  'float16')


@pytest.fixture(scope='module')
def page3d(model3d, tmp_path_factory, mnist_dir):
    return export(model3d, tmp_path_factory.mktemp('web3d'), mnist_dir,
                  'float32')


@pytest.fixture(scope='module')
def driver():
    """One headless Chromium for the module, its viewport 1200 x 900."""
    try:
        browser.find_browser()
    except browser.BrowserMissing as e:
        unavailable(str(e))
    with browser.headless_chromium(1200, 900) as d:
        yield d


def load(driver, path):
    """Open a page from disk, its logs emptied first; wait for its script."""
    driver.get_log('browser')
    driver.get_log('performance')
    driver.get(browser.file_url(path))
    assert driver.execute_script(
        'return !!(window.vaeExplorer && vaeExplorer.ready)'), \
        browser.console_errors(driver.get_log('browser'))


def shown(driver, canvas='digit'):
    """The gray levels a digit canvas of the page shows, (784,)."""
    return numpy.array(driver.execute_script(
        'return vaeExplorer.shown(arguments[0])', canvas))


def state(driver):
    return driver.execute_script('return vaeExplorer.state()')


def assert_shows(levels, images):
    """The page's gray levels are those of ``images`` (in [0, 1]), to one
    level: the page rounds float64 decodes, Chainer float32 ones."""
    expected = figures.to_uint8(numpy.asarray(images).reshape(-1))
    assert numpy.abs(levels.astype(int) - expected).max() <= 1


def first_of(test_set, digit):
    return test_set.images[figures.first_of_each_class(test_set.labels,
                                                        [digit])[0]]


def random_z(n_latent, seed=0):
    z = numpy.random.RandomState(seed).standard_normal((N_Z, n_latent)) * 2
    z[0] = 0.0
    z[1] = 6.0  # far from the data: large activations
    return z.astype(numpy.float32)


def page_decode(driver, z, logits=False):
    """The page's decodes of the rows of ``z``, (N, 784)."""
    return numpy.array(driver.execute_script(
        'var logits = arguments[1]; return arguments[0].map('
        'function (z) { return vaeExplorer.decode(z, logits); });',
        z.tolist(), logits))


def key_to(driver, element_id, *keys):
    element = driver.find_element('id', element_id)
    element.send_keys(*keys)
    return element


# ----------------------------------------------------- the page as a file

def test_export_writes_one_self_contained_page(page2d, page2d_half):
    path, printed = page2d
    assert os.listdir(path.parent) == ['index.html']  # no temporary left
    assert 'wrote %s' % path in printed
    text = path.read_text(encoding='utf-8')
    # nothing to fetch: no URL, no external script, style or image
    assert not re.search(r'https?:|//cdn|<link|\ssrc=|\shref=', text)
    csp = html.unescape(re.search(
        r'http-equiv="Content-Security-Policy" content="([^"]*)"',
        text).group(1))
    assert csp.startswith("default-src 'none';")
    data = page_json(path)
    assert data['weights']['dtype'] == 'float32'
    assert data['weights']['max_error'] is None
    assert data['plane']['count'] == explorer_lib.N_SCATTER
    assert data['reconstructions']['count'] == explorer_lib.N_RECONSTRUCTIONS
    # the half-precision page states its error, as the script printed it
    half_path, half_printed = page2d_half
    half = page_json(half_path)['weights']
    assert half['dtype'] == 'float16' and 0 < half['max_error'] < 1e-3
    assert ('at most %.2e' % half['max_error']) in half_printed
    assert half_path.stat().st_size < path.stat().st_size


@pytest.mark.numerics
def test_embedded_arrays_are_the_models_and_the_test_sets(model2d, page2d,
                                                          test_set):
    import base64
    data = page_json(page2d[0])
    layers = data['weights']['layers']
    for layer, name in zip(layers, ('ld1', 'ld2', 'ld3')):
        link = getattr(model2d, name)
        W = numpy.frombuffer(base64.b64decode(layer['W']), '<f4')
        numpy.testing.assert_array_equal(W.reshape(layer['shape']),
                                         link.W.array)
    mu, _ = inference.encode(model2d, test_set.images[:explorer_lib.N_SCATTER])
    plane = numpy.frombuffer(base64.b64decode(data['plane']['mu']), '<f4')
    numpy.testing.assert_array_equal(plane.reshape(-1, 2), mu)
    labels = numpy.frombuffer(base64.b64decode(data['plane']['labels']),
                              numpy.uint8)
    numpy.testing.assert_array_equal(labels,
                                     test_set.labels[:explorer_lib.N_SCATTER])
    assert data['palette'][0] == '#8000ff'  # rainbow at 0: violet
    assert data['palette'][9] == '#ff0000'  # at 1: red


@pytest.mark.numerics
def test_float16_error_is_that_of_rounded_weights(model2d):
    z = random_z(2, seed=5)
    twin = explorer_lib.with_float16_decoder(model2d)
    W16 = model2d.ld3.W.array.astype(numpy.float16).astype(numpy.float32)
    numpy.testing.assert_array_equal(twin.ld3.W.array, W16)
    numpy.testing.assert_array_equal(twin.le1.W.array, model2d.le1.W.array)
    expected = numpy.abs(inference.decode(twin, z)
                         - inference.decode(model2d, z)).max()
    assert explorer_lib.float16_error(model2d, z) == pytest.approx(expected)
    assert 0 < expected < 1e-3


def test_probe_latents_are_the_z_a_page_shows():
    means = [numpy.zeros((5, 2)), numpy.ones((3, 2))]
    z = explorer_lib.probe_latents(means, 4.0)  # (5 + 3 + 1000 + 1000 + 625, 2)
    assert z.shape == (2633, 2) and z.dtype == numpy.float32
    numpy.testing.assert_array_equal(z[5:8], 1.0)
    prior = z[8:1008]
    assert abs(prior.std() - 1) < 0.1 and abs(prior.mean()) < 0.1
    box = z[1008:2008]
    assert 3.5 < numpy.abs(box).max() <= 4.0
    numpy.testing.assert_array_equal(z[-625:], figures.latent_grid())
    assert explorer_lib.probe_latents([numpy.zeros((5, 20))], 3.0).shape == (2005, 20)


@pytest.mark.parametrize('make, message', BAD_MODEL_FILES)
def test_bad_model_file_is_a_one_line_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as e:
        export_web.main(['--model', str(path), '--out',
                         str(tmp_path / 'site')])
    assert_one_line_error(e, message)
    assert not (tmp_path / 'site').exists()


def test_bad_out_is_a_one_line_error(tmp_path, model3d, mnist_dir):
    model = tmp_path / 'model.npz'
    save_model(model, model3d)
    # a missing --out is made, parents included (cli.out_folder)
    assert export_web.main(['--model', str(model), '--out',
                            str(tmp_path / 'missing' / 'site'),
                            '--data-dir', mnist_dir, '--no-progress']) == 0
    assert (tmp_path / 'missing' / 'site' / 'index.html').is_file()
    (tmp_path / 'file').write_text('')
    with pytest.raises(SystemExit) as e:
        export_web.main(['--model', str(model), '--out',
                         str(tmp_path / 'file')])
    assert str(e.value.code).startswith('error: --out is a file')


# ------------------------------------------------------------ the decoder

@pytest.mark.numerics
def test_page_decoder_equals_chainer(driver, page2d, model2d):
    load(driver, page2d[0])
    z = random_z(2)
    numpy.testing.assert_allclose(page_decode(driver, z),
                                  inference.decode(model2d, z), rtol=0,
                                  atol=1e-5)
    with chainer.no_backprop_mode():
        logits = model2d.decode(z, sigmoid=False).array
    numpy.testing.assert_allclose(page_decode(driver, z, logits=True),
                                  logits, rtol=1e-5, atol=1e-5)


@pytest.mark.numerics
def test_float16_page_decoder_is_within_its_stated_error(driver, page2d_half,
                                                         model2d):
    load(driver, page2d_half[0])
    z = random_z(2)
    decoded = page_decode(driver, z)
    # exactly the float16-rounded weights ...
    numpy.testing.assert_allclose(
        decoded, inference.decode(explorer_lib.with_float16_decoder(model2d), z),
        rtol=0, atol=1e-5)
    # ... which are within 1e-3 of the model
    numpy.testing.assert_allclose(decoded, inference.decode(model2d, z),
                                  rtol=0, atol=1e-3)


def test_page_decoder_of_a_3d_elu_model(driver, page3d, model3d):
    load(driver, page3d[0])
    z = random_z(3, seed=1)
    numpy.testing.assert_allclose(page_decode(driver, z),
                                  inference.decode(model3d, z), rtol=0,
                                  atol=1e-5)


def test_page_activations_are_chainers(driver, page3d):
    load(driver, page3d[0])
    x = numpy.concatenate([numpy.linspace(-40, 40, 161),
                           [-1e-4, -0.0, 0.0, 1e-4, 37.5, -37.5]])
    for name, func in ACTIVATIONS.items():
        page = driver.execute_script(
            'return vaeExplorer.activation(arguments[0], arguments[1])',
            name, x.tolist())
        with chainer.no_backprop_mode():
            expected = func(x).array  # float64 in, float64 out
        numpy.testing.assert_allclose(page, expected, rtol=1e-12,
                                      atol=1e-15, err_msg=name)


def test_page_reads_every_float16_value(driver, page3d):
    load(driver, page3d[0])
    page = driver.execute_script(
        'var out = []; for (var h = 0; h < 65536; h++) '
        'out.push(vaeExplorer.halfToFloat(h)); return out.map(String);')
    page = numpy.array([float(v) for v in page])
    expected = numpy.arange(65536, dtype=numpy.uint16).view(
        numpy.float16).astype(numpy.float64)
    numpy.testing.assert_array_equal(page, expected)


# ------------------------------------------------------ the page, in use

def plane_rect(driver):
    return driver.execute_script(
        "var el = document.getElementById('plane'); "
        "el.scrollIntoView({block: 'center'}); "
        "var r = el.getBoundingClientRect(); "
        "return {left: r.left, top: r.top, width: r.width, "
        "height: r.height};")


def pointer(driver, *moves, press=False):
    """Real pointer events (WebDriver actions) to viewport points."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    actions = ActionBuilder(driver)
    first, rest = moves[0], moves[1:]
    actions.pointer_action.move_to_location(*first)
    if press:
        actions.pointer_action.pointer_down()
    for point in rest:
        actions.pointer_action.move_to_location(*point)
    if press:
        actions.pointer_action.pointer_up()
    actions.perform()


def expected_z(rect, extent, x, y):
    """The z under viewport point (x, y): the plane spans [-R, R]^2."""
    fx = (x - rect['left']) / rect['width']
    fy = (y - rect['top']) / rect['height']
    return numpy.array([-extent + 2 * extent * fx, extent - 2 * extent * fy])


def test_pointer_over_the_plane_shows_the_decode_of_its_z(driver, page2d,
                                                          model2d):
    load(driver, page2d[0])
    extent = page_json(page2d[0])['plane']['extent']
    rect = plane_rect(driver)
    pixel = 2 * extent / rect['width']  # z per CSS pixel
    before = shown(driver)
    for fx, fy, press in [(0.3, 0.65, False), (0.8, 0.2, False),
                          (0.55, 0.45, True)]:
        x = int(round(rect['left'] + fx * rect['width']))
        y = int(round(rect['top'] + fy * rect['height']))
        if press:  # a drag ending here
            pointer(driver, (x - 40, y + 30), (x - 10, y + 5), (x, y),
                    press=True)
        else:
            pointer(driver, (x, y))
        now = state(driver)
        assert now['source'] == 'pointer'
        z = numpy.array(now['z'])
        numpy.testing.assert_allclose(z, expected_z(rect, extent, x, y),
                                      atol=pixel)
        levels = shown(driver)
        assert_shows(levels, inference.decode(model2d, z[None]))
        assert not numpy.array_equal(levels, before)
        before = levels
    readout = driver.find_element('id', 'z-readout').text
    assert readout == '(%s)' % ', '.join(
        ('\u2007' if v >= 0 else '\u2212') + '%.3f' % abs(v) for v in z)


def test_interpolation_slider_ends_show_the_start_and_end_digits(
        driver, page2d, model2d, test_set):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    load(driver, page2d[0])
    Select(driver.find_element('id', 'start')).select_by_value('3')
    Select(driver.find_element('id', 'end')).select_by_value('8')
    x3, x8 = first_of(test_set, 3), first_of(test_set, 8)
    assert_shows(shown(driver, 'start-image'), x3)
    assert_shows(shown(driver, 'end-image'), x8)
    mu = inference.encode(model2d, numpy.stack([x3, x8]))[0]  # (2, 2)
    for key, t, end in [(Keys.END, '1.0000', 1), (Keys.HOME, '0.0000', 0),
                        (Keys.END, '1.0000', 1)]:
        key_to(driver, 't', key)  # the keyboard moves the native slider
        assert driver.find_element('id', 't-value').text == t
        now = state(driver)
        assert now['source'] == 'interpolation'
        numpy.testing.assert_allclose(now['z'], mu[end], atol=1e-6)
        assert_shows(shown(driver), inference.decode(model2d, mu[end:end + 1]))
    # one step of 1/80 back from the end
    key_to(driver, 't', Keys.LEFT)
    assert driver.find_element('id', 't-value').text == '0.9875'
    numpy.testing.assert_allclose(state(driver)['z'],
                                  figures.interpolate(mu[0], mu[1], 81)[79],
                                  atol=1e-6)


def test_map_overlay_tiles_are_the_decodes_of_the_grid(driver, page2d,
                                                       model2d):
    load(driver, page2d[0])
    plane_rect(driver)
    image = "return document.getElementById('plane').toDataURL()"
    before = driver.execute_script(image)
    driver.find_element('id', 'map-toggle').click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        'return vaeExplorer.plane.mapShown()'))
    assert driver.execute_script(image) != before
    grid = figures.latent_grid(explorer_lib.MAP_TILES, explorer_lib.MAP_EXTENT)  # (625, 2)
    for r, c in [(0, 0), (0, 24), (12, 12), (24, 3)]:
        tile = numpy.array(driver.execute_script(
            'return vaeExplorer.plane.mapTile(arguments[0], arguments[1])',
            r, c))
        assert_shows(tile, inference.decode(model2d,
                                            grid[r * explorer_lib.MAP_TILES + c][None]))
    driver.find_element('id', 'map-toggle').click()
    assert not driver.execute_script('return vaeExplorer.plane.mapShown()')
    assert driver.execute_script(image) == before


def test_reconstruction_is_the_decode_of_the_test_images_mu(driver, page2d,
                                                            model2d, test_set):
    from selenium.webdriver.common.keys import Keys
    load(driver, page2d[0])
    key_to(driver, 'recon-index', Keys.RIGHT, Keys.RIGHT, Keys.RIGHT)
    x = test_set.images[3]
    assert_shows(shown(driver, 'recon-input'), x)
    assert_shows(shown(driver, 'recon-output'),
                 inference.reconstruct(model2d, x[None]))
    caption = driver.find_element('id', 'recon-caption').text
    assert caption == 'test image #3 (a %d)' % test_set.labels[3]
    driver.find_element('id', 'recon-use').click()
    mu = inference.encode(model2d, x[None])[0][0]
    numpy.testing.assert_allclose(state(driver)['z'], mu, atol=1e-6)


def test_3d_page_has_sliders_and_the_prior_instead_of_a_plane(driver, page3d,
                                                              model3d):
    from selenium.webdriver.common.keys import Keys
    load(driver, page3d[0])
    assert not driver.find_element('id', 'plane-box').is_displayed()
    assert not driver.find_element('id', 'plane-controls').is_displayed()
    sliders = driver.find_elements('css selector',
                                   '#sliders input[type=range]')
    assert [s.get_attribute('id') for s in sliders] == ['z1', 'z2', 'z3']
    labels = driver.find_elements('css selector', '#sliders label')
    assert [(lb.get_attribute('for'), lb.text) for lb in labels] == [
        ('z1', 'z1'), ('z2', 'z2'), ('z3', 'z3')]
    z0 = numpy.array(state(driver)['z'])
    slider = key_to(driver, 'z2', Keys.RIGHT, Keys.RIGHT)
    z = numpy.array(state(driver)['z'])
    assert z[1] == float(slider.get_attribute('value'))
    assert 0.015 < z[1] - z0[1] < 0.025  # two steps of 0.01, from z0 rounded
    assert z[0] == z0[0] and z[2] == z0[2]
    assert_shows(shown(driver), inference.decode(model3d, z[None]))
    driver.find_element('id', 'prior').click()
    now = state(driver)
    assert now['source'] == 'prior' and now['z'] != z.tolist()
    assert_shows(shown(driver), inference.decode(model3d,
                                                 numpy.array([now['z']])))


# ------------------------------------------------- console, network, looks

def test_no_console_error_and_no_network_request(driver, page2d):
    from selenium.webdriver.common.keys import Keys
    load(driver, page2d[0])
    rect = plane_rect(driver)
    pointer(driver, (int(rect['left'] + 50), int(rect['top'] + 60)))
    driver.find_element('id', 'map-toggle').click()
    driver.find_element('id', 'prior').click()
    key_to(driver, 't', Keys.END)
    key_to(driver, 'recon-index', Keys.END)
    assert browser.console_errors(driver.get_log('browser')) == []
    page_url = browser.file_url(page2d[0])
    requests = browser.network_requests(driver.get_log('performance'))
    assert page_url in requests  # the log does record requests
    assert [u for u in requests if u != page_url] == []
    # and a fetch would be refused by the page's policy, and reported
    driver.execute_script("fetch('http://127.0.0.1:9/').catch(function () {});"
                          "new Image().src = 'http://127.0.0.1:9/x.png';")
    errors = browser.console_errors(driver.get_log('browser'))
    assert len(errors) >= 1
    assert all('Content Security Policy' in e for e in errors)


def test_phone_viewport_needs_no_sideways_scroll(driver, page2d):
    browser.set_viewport(driver, 390, 844)
    try:
        load(driver, page2d[0])
        sizes = driver.execute_script(
            'return {page: document.documentElement.scrollWidth, '
            'inner: window.innerWidth, '
            "plane: document.getElementById('plane')"
            '.getBoundingClientRect().width}')
        assert sizes['inner'] == 390
        assert sizes['page'] <= 390
        assert 300 < sizes['plane'] <= 390
    finally:
        browser.set_viewport(driver, 1200, 900)


def test_screenshot_of_the_page_is_not_blank(tmp_path, page2d):
    try:
        browser.find_browser()
    except browser.BrowserMissing as e:
        unavailable(str(e))
    png = tmp_path / 'explorer.png'
    rc, printed = run_main(screenshot_web, [
        '--page', str(page2d[0]), '--out', str(png), '--z', '0.5', '-1',
        '--width', '1000', '--height', '700'])
    assert rc == 0 and printed == 'wrote %s\n' % png
    assert os.listdir(tmp_path) == ['explorer.png']
    with Image.open(png) as im:
        assert im.size == (1000, 700)
        rgb = numpy.asarray(im.convert('RGB')).astype(int)  # (700, 1000, 3)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    assert (spread > 80).sum() > 500  # coloured points of the scatter
    dark_gray = (spread < 4) & (rgb.max(axis=2) < 128)
    assert dark_gray.sum() > 10000  # the decoded digit, 196 x 196
    assert (rgb.min(axis=2) > 235).mean() < 0.9  # not a white page
    assert len(numpy.unique(rgb.reshape(-1, 3), axis=0)) > 100


def test_screenshot_of_a_missing_page_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        screenshot_web.main(['--page', str(tmp_path / 'nope.html'),
                             '--out', str(tmp_path / 'x.png')])
    assert str(e.value.code) == 'error: no page at %s' % (tmp_path /
                                                           'nope.html')
