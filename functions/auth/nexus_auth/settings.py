"""Settings of the auth functions (environment given by the template), failing fast."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class AuthorizerSettings(NexusSettings):
    api_keys_table: str
    users_table: str
    tokens_table: str
    signing_key_secret_arn: str
    rate_limit_credential: str  # per user, whatever the credential: tokens per second / burst, e.g. "200/400"
    rate_limit_orders: str  # order entry (POST/DELETE /v1/orders...) per user and per account
    rate_limit_ip: str  # per source IP
    authorizer_cache_seconds: float  # how long a good key, session or user item is kept (0: read every time)


class AuthApiSettings(NexusSettings):
    users_table: str
    api_keys_table: str
    tokens_table: str
    accounts_table: str
    signing_key_secret_arn: str
    audit_stream: str
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    lockout_threshold: int = 5
    lockout_seconds: int = 900
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    rate_limit_auth_ip: str = "5/20"  # register, login, refresh per source IP: tokens per second / burst
    max_api_keys_per_user: int = 20  # active keys; over it: 409 limit_reached
    max_accounts_per_user: int = 10


class AdminApiSettings(NexusSettings):
    users_table: str
    accounts_table: str
    instruments_table: str
    audit_stream: str
    order_commands_stream: str  # halts and resumes reach the matching engine on its journal
