"""`ftmodel-tui` and `python -m tui`: start the console with the garbage collector paused from the
first import on.

Importing Textual and the console allocates some 60,000 objects that all live as long as the
console; the collector's passes over them while they are made are wasted work (about a tenth of the
import). So the collector is paused here, before anything is imported, and `tui.app` turns it back on
once the first frame is painted (freezing what the start made out of later collections). Importing
`tui.app` itself (tests do) leaves the collector alone.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ftmodel-tui`."""
    gc.disable()
    try:
        from tui.app import main as run_console

        return run_console(argv)
    finally:
        gc.enable()


if __name__ == "__main__":
    sys.exit(main())
