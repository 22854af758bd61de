"""Market surveillance: pattern detectors over the order lifecycle, live and in history."""
