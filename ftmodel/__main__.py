"""Allow `python -m ftmodel`."""

import sys

from ftmodel.cli import main

sys.exit(main())
