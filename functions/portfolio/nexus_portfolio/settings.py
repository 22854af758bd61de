"""Settings of the portfolio functions (environment given by the template; no defaults)."""

from __future__ import annotations

from decimal import Decimal

from nexus_common.fees import FeeSchedule
from nexus_common.settings import NexusSettings
from pydantic import Field


class PortfolioConsumerSettings(NexusSettings):
    positions_table: str
    ledger_table: str
    settlements_table: str
    maker_fee_bps: Decimal = Field(ge=0, lt=10000)
    taker_fee_bps: Decimal = Field(ge=0, lt=10000)

    def fees(self) -> FeeSchedule:
        return FeeSchedule.from_bps(self.maker_fee_bps, self.taker_fee_bps)


class PortfolioApiSettings(NexusSettings):
    accounts_table: str
    positions_table: str
    trades_table: str
    ledger_table: str
    settlements_table: str


class SettlementRunSettings(NexusSettings):
    settlements_table: str
    ledger_table: str


class FundingApiSettings(NexusSettings):
    funding_table: str
    accounts_table: str
    ledger_table: str
    settlements_table: str
    audit_stream: str
