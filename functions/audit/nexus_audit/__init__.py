"""The audit trail: an append-only store of what happened to each order, trade, account and key."""
