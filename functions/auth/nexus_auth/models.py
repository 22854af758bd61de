"""Request and response bodies of the auth, users, keys and admin routes (pydantic; OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[^@\s\x00-\x1f]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterRequest(Strict):
    email: str = Field(min_length=3, max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=1, max_length=1024)
    name: str | None = Field(default=None, min_length=1, max_length=100)


class RegisterResponse(BaseModel):
    status: Literal["accepted"]
    message: str


class LoginRequest(Strict):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    user_id: str


class LogoutResponse(BaseModel):
    status: Literal["logged_out"]


class Profile(BaseModel):
    user_id: str
    email: str | None = None
    name: str
    roles: list[str]
    accounts: list[str]
    default_account_id: str
    created_at: str


class ProfileEnvelope(BaseModel):
    user: Profile


class ProfileUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    default_account_id: str | None = Field(default=None, min_length=1, max_length=64)


class NewAccountRequest(Strict):
    name: str = Field(min_length=1, max_length=100)


class AccountOut(BaseModel):
    account_id: str
    name: str
    currency: str
    status: str
    created_at: str


class AccountEnvelope(BaseModel):
    account: AccountOut


class NewKeyRequest(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "trade"]] = Field(min_length=1, max_length=2)
    account_id: str | None = Field(default=None, min_length=1, max_length=64)


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    account_id: str | None = None
    status: str
    created_at: str
    revoked_at: str | None = None


class KeyEnvelope(BaseModel):
    key: KeyOut


class CreatedKeyEnvelope(BaseModel):
    key: KeyOut
    api_key: str = Field(description="The key itself: shown only in this answer, only its hash is stored.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class HaltRequest(Strict):
    reason: str = Field(min_length=1, max_length=500)


class InstrumentStatus(BaseModel):
    symbol: str
    status: str


class InstrumentStatusEnvelope(BaseModel):
    instrument: InstrumentStatus


class TradingSwitchRequest(Strict):
    trading_enabled: StrictBool  # a JSON true/false only: never "yes", 1 or "false"
    reason: str = Field(min_length=1, max_length=500)


class AccountTrading(BaseModel):
    account_id: str
    trading_enabled: bool


class AccountTradingEnvelope(BaseModel):
    account: AccountTrading


class RoleChange(Strict):
    role: Literal["trader", "compliance", "admin"]


class RolesEnvelope(BaseModel):
    user_id: str
    roles: list[str]
