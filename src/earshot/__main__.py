"""The ``earshot`` command (also ``python -m earshot``).

A thin entry point, so that a Ctrl-C (or SIGTERM) arriving while the command line's modules are
still being imported prints one line instead of a traceback: everything heavy is imported
inside the guard, and `earshot.cli.main` handles every later interrupt itself.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Run the ``earshot`` command line; returns its exit status (see `earshot.outcome`)."""
    try:
        import signal

        def terminated(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminated)  # until earshot.cli.main installs its own
        from earshot.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        print("earshot: stopped while starting", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
