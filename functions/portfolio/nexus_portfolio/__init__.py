"""Portfolio and post-trade: positions and P&L, the double-entry ledger, T+2 settlement."""
