"""The local runtime reads the WebSocket API from the template: routes, integrations, the
``$connect`` authorizer and the stage; the functions get the Management API endpoint."""

from __future__ import annotations

from typing import Any


def test_the_template_websocket_api_is_read_with_its_routes_and_authorizer(aws: Any) -> None:
    # GIVEN the project's template, provisioned under moto
    (api,) = aws.platform.websocket_apis.values()
    # THEN its routes, authorizer and stage are what streaming.yaml declares
    assert api.stage == "ws" and api.route_selection == "$request.body.action"
    assert set(api.routes) == {"$connect", "$disconnect", "subscribe", "unsubscribe", "$default"}
    assert set(api.routes.values()) == {"StreamingRoutesFunction"}
    assert api.authorizer is not None
    assert api.authorizer.function == "AuthorizerFunction"
    assert api.authorizer.identity_sources == ("route.request.header.Authorization",)
    # AND without an override the functions post to the stage's own Management API endpoint
    endpoint = aws.env_for("StreamingFanOutFunction")["WS_MANAGEMENT_ENDPOINT"]
    assert endpoint == f"https://{api.api_id}.execute-api.us-east-1.amazonaws.com/ws"
    assert aws.env_for("NotificationsFunction")["WS_MANAGEMENT_ENDPOINT"] == endpoint
