"""``python -m nexus_marketmaker``: the market maker process (see ``main``)."""

import sys

from nexus_marketmaker.main import main

sys.exit(main())
