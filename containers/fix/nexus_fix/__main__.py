"""``python -m nexus_fix``: the FIX gateway process (``nexus_fix.main``)."""

from nexus_fix.main import main

raise SystemExit(main())
