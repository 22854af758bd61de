"""Portfolio analytics: VaR, Expected Shortfall, performance, correlation, risk decomposition
and stress tests, over the platform's daily valuations and price history."""
