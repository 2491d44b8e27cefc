"""``python -m tlsecho``."""

import sys

from tlsecho._launch import main

sys.exit(main())
