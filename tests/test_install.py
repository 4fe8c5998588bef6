"""A non-editable install (``pip install .``) carries the configs, the
explorer's assets and the console scripts.

configs/ lives at the top of the repository; setup.py installs it inside
the package as vae/configs, where vae/config.py looks first. The package is
built from a copy of the sources (so nothing is written into the clone) and
installed into a folder of its own, then imported from a working folder
outside the clone.
"""
import os
import shutil
import subprocess
import sys
import sysconfig

from testutil import ROOT


def test_installed_package_finds_its_configs(tmp_path):
    source = tmp_path / 'source'
    source.mkdir()
    for name in ('setup.py', 'LICENSE'):
        shutil.copy(ROOT / name, source)
    for name in ('vae', 'configs'):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns('__pycache__'))
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',
                    '--no-deps', '--no-build-isolation', '--no-index',
                    '--target', str(site), str(source)], check=True,
                   cwd=tmp_path, env=dict(os.environ, PIP_CONSTRAINT=''))
    assert sorted(os.listdir(site / 'vae' / 'configs')) == [
        'article_z2.json', 'article_z20.json', 'default.json']
    # the installed vae first; the dependencies from this environment
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), sysconfig.get_paths()['purelib']]))
    run = subprocess.run(
        [sys.executable, '-c', 'import vae.config as c; '
         'print(c.__file__); print(c.CONFIG_DIR); '
         'print(c.defaults().n_latent)'],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module, config_dir, n_latent = run.stdout.split()
    assert module.startswith(str(site))
    assert config_dir == str(site / 'vae' / 'configs')
    assert n_latent == '20'
    assert sorted(os.listdir(site / 'vae' / 'export' / 'web_assets')) == [
        'explorer.css', 'explorer.html', 'explorer.js']
    # each console script runs its command's main
    for name in ('vae-train', 'vae-evaluate', 'vae-plot', 'vae-swiss-roll',
                 'vae-export-web', 'vae-export-onnx'):
        run = subprocess.run([sys.executable, str(site / 'bin' / name),
                              '--help'], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith('usage: %s ' % name), run.stdout[:80]
