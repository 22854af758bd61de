"""Named stress scenarios, kept as data.

Each historical scenario is the close-to-close move of the S&P 500 index on that day (a
market-wide move, applied to each position scaled by its beta to the benchmark, see
``metrics.stress``); a scenario may also carry per-symbol or per-sector moves, which take
precedence over the market move for the positions they name. Moves are percentages, as
``Decimal`` strings (``"-9.03"`` is a 9.03 % fall).

Sources: S&P 500 daily closes (1987-10-16 282.70 -> 1987-10-19 224.84; 2008-10-14 998.01 ->
2008-10-15 907.84; 2020-03-13 2711.02 -> 2020-03-16 2386.13; 2022-09-12 4110.41 -> 2022-09-13
3932.69), rounded to two decimals. Only the index move is recorded (no per-symbol moves are kept for
these days); a position's move is the index move times its beta.
"""

from __future__ import annotations

from typing import Any, Final

# name -> fields of metrics.Scenario (market_pct, per_symbol_pct, sector_pct as percent strings).
HISTORICAL: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "black_monday_1987",
        "as_of": "1987-10-19",
        "description": "Black Monday: the S&P 500 fell 20.47 % in one session.",
        "market_pct": "-20.47",
    },
    {
        "name": "gfc_2008_10_15",
        "as_of": "2008-10-15",
        "description": "Financial crisis crash day: the S&P 500 fell 9.03 % on recession fears.",
        "market_pct": "-9.03",
    },
    {
        "name": "covid_2020_03_16",
        "as_of": "2020-03-16",
        "description": "March 2020 crash: the S&P 500 fell 11.98 % after the emergency rate cut.",
        "market_pct": "-11.98",
    },
    {
        "name": "rates_shock_2022_09_13",
        "as_of": "2022-09-13",
        "description": (
            "Rates shock: a hotter-than-expected CPI print repriced Fed hikes (2-year Treasury yield"
            " +18 bp); the S&P 500 fell 4.32 %."
        ),
        "market_pct": "-4.32",
    },
)
