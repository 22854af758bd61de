"""API Gateway REST ``REQUEST`` authorizer: ``Authorization: Bearer nxk_...`` -> IAM policy.

A missing, garbled, unknown or revoked key raises ``Exception("Unauthorized")``: the API Gateway
contract for a 401. Any other failure (the table is unreachable) raises something else, which API
Gateway answers with 500: a key is never accepted by accident.
"""

from __future__ import annotations

import hmac
from typing import Any

from nexus_common import aws
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import NexusSettings, lazy, lazy_settings

from nexus_auth.keys import bearer_key, hash_api_key


class AuthorizerSettings(NexusSettings):
    api_keys_table: str


logger = get_logger()
settings = lazy_settings(AuthorizerSettings)
api_keys = lazy(lambda: aws.dynamodb_table(settings().api_keys_table))


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def api_resource(method_arn: str) -> str:
    """``arn:...:apiId/stage/GET/v1/orders`` -> ``arn:...:apiId/stage/*`` (the whole API)."""
    parts = method_arn.split("/")
    if len(parts) < 2 or not parts[0].startswith("arn:"):
        raise ValueError("not a method ARN")
    return f"{parts[0]}/{parts[1]}/*"


def policy(account_id: str, key_id: str, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": account_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": api_resource(method_arn),
                }
            ],
        },
        "context": {"account_id": account_id, "key_id": key_id},
    }


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    api_key = bearer_key(_header(event, "authorization"))
    if api_key is None:
        logger.info("denied: missing or malformed credentials")
        raise Exception("Unauthorized")
    key_hash = hash_api_key(api_key)
    item = api_keys().get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
    if (
        not item
        or item.get("status") != "active"
        or not hmac.compare_digest(str(item.get("key_hash", "")), key_hash)
        or not item.get("account_id")
    ):
        logger.info("denied: unknown or revoked key")
        raise Exception("Unauthorized")
    account_id, key_id = str(item["account_id"]), str(item.get("key_id", ""))
    logger.info("allowed", extra={"account_id": account_id, "key_id": key_id})
    return policy(account_id, key_id, str(event["methodArn"]))
