"""Runs one of the scripts and holds it in the middle of a write, for the
tests of Ctrl-C and SIGTERM (tests/test_hostile.py).

    python tests/interrupt_driver.py MARKER SCRIPT ARGS...

When :func:`vae.atomic.atomic_path` has written a temporary file and is
about to move it into place, the driver creates the file ``MARKER`` and
waits there; the test then sends the signal. SCRIPT's ``main`` gets ARGS.
"""
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
# this checkout's vae, whatever copy of it is installed
sys.path[:0] = [str(HERE), str(HERE.parent)]
from testutil import load_script  # NOQA: E402
from vae import atomic  # NOQA: E402


def main():
    marker, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]

    def held():
        pathlib.Path(marker).touch()
        time.sleep(120)
        raise AssertionError('no signal came')

    atomic._umask = held  # atomic_path calls it just before the rename
    return load_script(script).main(args)


if __name__ == '__main__':
    sys.exit(main())
