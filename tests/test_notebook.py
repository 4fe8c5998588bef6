"""notebooks/vae_walkthrough.ipynb: committed clean, runs top to bottom.

The run executes every cell with nbclient in a fresh ``python3`` kernel,
which jupyter_client starts with this very interpreter (so each tested stack
runs the notebook on its own NumPy), in an empty temporary working folder.
The notebook's ``parameters`` cell keeps its defaults and gets a small
configuration appended (the real MNIST of the ``mnist_dir`` fixture, a
thousand training images, one or two epochs, ``QUICK = True``), so that a
parameter added to the notebook later needs no change here. A failing cell,
one of the ``assert``s that check the theory included, fails the test with
nbclient's ``CellExecutionError``, whose message shows the cell's source and
its traceback.
"""
import os
import pathlib
import re
import sys

import pytest

# optional test-only packages: a GPU machine may lack them (`-m gpu` then
# still collects this file)
nbformat = pytest.importorskip('nbformat')
NotebookClient = pytest.importorskip('nbclient').NotebookClient

NOTEBOOK = (pathlib.Path(__file__).resolve().parent.parent / 'notebooks'
            / 'vae_walkthrough.ipynb')

#: The short configuration of the test run (names of the parameters cell).
SMOKE_PARAMETERS = {
    'DEVICE': '@numpy',
    'N_TRAIN': 1000,
    'EPOCHS': 2,
    'AE_EPOCHS': 1,
    'N_HIDDEN': 64,
    'N_LATENT': 2,
    'QUICK': True,
}
#: Seconds a single cell may run (the whole smoke run takes about ten).
CELL_TIMEOUT = 300
#: Figures the smoke run displays at least (two reconstruction grids, the
#: loss curves, two scatters, two prior-sample sheets, the latent map, the
#: interpolation sheet and the posterior contours make ten).
MIN_FIGURES = 8


def read_notebook():
    return nbformat.read(str(NOTEBOOK), as_version=4)


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == 'code']


def parameters_cell(nb):
    tagged = [cell for cell in code_cells(nb)
              if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, (
        'expected one code cell tagged "parameters", found %d' % len(tagged))
    return tagged[0]


def assigned_names(source):
    return set(re.findall(r'^([A-Z_][A-Z0-9_]*)\s*=', source, re.MULTILINE))


def test_notebook_is_valid_and_committed_without_outputs():
    nb = read_notebook()
    nbformat.validate(nb)
    dirty = [index for index, cell in enumerate(nb.cells)
             if cell.cell_type == 'code'
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (
        'cells %s of %s hold outputs or execution counts; clear them before '
        'committing (Jupyter or VS Code: "Clear All Outputs", then save)'
        % (dirty, NOTEBOOK.name))


def test_parameters_cell_comes_first_with_the_defaults():
    nb = read_notebook()
    cell = parameters_cell(nb)
    assert code_cells(nb)[0] is cell, (
        'the parameters cell must be the first code cell')
    assert re.search(r'^DATA_DIR = None\b', cell.source, re.MULTILINE)
    assert re.search(r'^QUICK = False\b', cell.source, re.MULTILINE)
    missing = set(SMOKE_PARAMETERS) - assigned_names(cell.source)
    assert not missing, ('the test sets %s, which the parameters cell no '
                         'longer defines' % sorted(missing))
    # the way to the article's configuration is written down
    assert 'N_HIDDEN = 500' in cell.source and 'EPOCHS = 100' in cell.source


def test_notebook_imports_the_model_instead_of_defining_it():
    sources = [cell.source for cell in code_cells(read_notebook())]
    code = '\n'.join(sources)
    imports_vae = re.search(r'^from vae(\.model)? import .*\bVAE\b', code,
                            re.MULTILINE)
    assert imports_vae, 'the notebook must import VAE from the vae package'
    for source in sources:
        assert not re.search(r'^\s*class\s+VAE\b', source, re.MULTILINE), (
            'a cell defines class VAE; import it from vae.model instead:\n'
            + source)
        assert not re.search(r'^\s*def\s+get_loss_func\b', source,
                             re.MULTILINE), (
            'a cell defines get_loss_func; use VAE.get_loss_func:\n' + source)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(mnist_dir, tmp_path):
    nb = read_notebook()
    cell = parameters_cell(nb)
    overrides = dict(SMOKE_PARAMETERS, DATA_DIR=mnist_dir)
    cell.source += '\n\n# Overrides of tests/test_notebook.py\n' + ''.join(
        '%s = %r\n' % item for item in overrides.items())
    # Report which Python the kernel ran, to be sure it is this stack's.
    nb.cells.append(nbformat.v4.new_code_cell(
        'import sys\nprint("KERNEL_PREFIX=" + sys.prefix)'))

    workdir = tmp_path / 'cwd'
    workdir.mkdir()
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, startup_timeout=120, kernel_name='python3',
        resources={'metadata': {'path': str(workdir)}},
        # plain tracebacks: a failure's message has no terminal colour codes
        extra_arguments=['--InteractiveShell.colors=NoColor'])
    # Agg in the kernel as well: no figure may need a display.
    client.execute(env=dict(os.environ, MPLBACKEND='Agg'))

    outputs = [output for cell in code_cells(nb) for output in cell.outputs]
    errors = [output for output in outputs if output.output_type == 'error']
    assert not errors
    figures = [output for output in outputs
               if output.output_type == 'display_data'
               and 'image/png' in output.data]
    assert len(figures) >= MIN_FIGURES, (
        'the notebook displayed %d figures, expected at least %d'
        % (len(figures), MIN_FIGURES))
    printed = ''.join(output.get('text', '') for output in outputs
                      if output.output_type == 'stream')
    assert 'KERNEL_PREFIX=%s\n' % sys.prefix in printed, (
        'the kernel did not run this interpreter (%s)' % sys.prefix)
    assert 'notebook ran for' in printed
    assert list(workdir.iterdir()) == [], (
        'the notebook wrote into its working folder: %s'
        % sorted(p.name for p in workdir.iterdir()))
