"""Runs one of the scripts with a fault in its writes, for the tests of
what a user sees then (tests/test_hostile.py).

    python tests/script_driver.py FAULT SCRIPT ARGS...

SCRIPT's ``main`` gets ARGS. FAULT is one of

* ``hold=MARKER``: when :func:`vae.atomic.atomic_path` has written a
  temporary file and is about to move it into place, create the file
  ``MARKER`` and wait there (the test then sends a signal);
* ``full=NAME:BYTES``: the disk fills up while a file whose name starts
  with NAME is written, after BYTES bytes of it (:func:`testutil.full_disk`).
"""
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
# this checkout's vae, whatever copy of it is installed
sys.path[:0] = [str(HERE), str(HERE.parent)]
from testutil import command, full_disk  # NOQA: E402
from vae import atomic  # NOQA: E402


def main():
    fault, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    kind, _, value = fault.partition('=')
    if kind == 'hold':
        def held():
            pathlib.Path(value).touch()
            time.sleep(120)
            raise AssertionError('no signal came')

        atomic._umask = held  # atomic_path calls it just before the rename
    elif kind == 'full':
        name, _, limit = value.partition(':')
        atomic.open = full_disk(name, int(limit))
    else:
        raise SystemExit('unknown fault %r' % fault)
    return command(script).main(args)


if __name__ == '__main__':
    sys.exit(main())
