"""``python -m tlsecho``."""

import sys

from tlsecho.cli import main

sys.exit(main())
