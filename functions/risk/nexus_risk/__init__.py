"""Risk: releases of pre-trade reservations and the cash of fills, from execution events."""
