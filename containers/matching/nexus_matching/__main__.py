"""``python -m nexus_matching``: run the matching engine process."""

from nexus_matching.runner import main

main()
