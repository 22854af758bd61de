"""The local API Gateway's own decisions: route matching and authorizer policies."""

from __future__ import annotations

from nexus.local.apigw import _allows, _compile
from nexus.local.model import Route

ARN = "arn:aws:execute-api:us-east-1:123456789012:api1/api/GET/v1/orders/42"


def _route(path: str) -> Route:
    return Route(function="F", api="Api", method="GET", path=path, authorizer=None)


def test_path_parameters_and_greedy_proxy() -> None:
    assert _compile(_route("/v1/orders/{order_id}")).pattern.match("/v1/orders/42").groupdict() == {"order_id": "42"}
    assert _compile(_route("/v1/orders/{order_id}")).pattern.match("/v1/orders/42/x") is None
    assert _compile(_route("/files/{proxy+}")).pattern.match("/files/a/b").groupdict() == {"proxy": "a/b"}
    literal, greedy = _compile(_route("/v1/orders")), _compile(_route("/{proxy+}"))
    assert literal.specificity > greedy.specificity


def _policy(effect: str, resource: str) -> dict[str, object]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def test_policy_allow_deny_and_wildcards() -> None:
    assert _allows(_policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:api1/api/*"), ARN)
    assert not _allows(_policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:api1/api/POST/*"), ARN)
    assert not _allows(_policy("Deny", "*"), ARN)
    assert not _allows({}, ARN)
    both = {"Statement": [_policy("Allow", "*")["Statement"][0], _policy("Deny", ARN)["Statement"][0]]}  # type: ignore[index]
    assert not _allows(both, ARN)
