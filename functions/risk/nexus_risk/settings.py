"""Settings of the risk consumer (environment given by the template; no defaults)."""

from __future__ import annotations

from decimal import Decimal

from nexus_common.fees import FeeSchedule
from nexus_common.settings import NexusSettings
from pydantic import Field


class RiskConsumerSettings(NexusSettings):
    accounts_table: str
    orders_table: str
    maker_fee_bps: Decimal = Field(ge=0, lt=10000)
    taker_fee_bps: Decimal = Field(ge=0, lt=10000)

    def fees(self) -> FeeSchedule:
        return FeeSchedule.from_bps(self.maker_fee_bps, self.taker_fee_bps)
