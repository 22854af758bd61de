"""What moto's API Gateway Management API received for a WebSocket connection: the frames the
handlers posted (``PostToConnection``), decoded in order. The one reader every push test uses."""

from __future__ import annotations

import json
from typing import Any

from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends


def posted(connection_id: str) -> list[dict[str, Any]]:
    """The frames posted to ``connection_id``, in order (none for a connection moto does not
    know, or has forgotten when it was deleted)."""
    connection = apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections.get(connection_id)
    text = connection.data.decode() if connection is not None else ""
    decoder, frames, at = json.JSONDecoder(), [], 0
    while at < len(text):
        frame, at = decoder.raw_decode(text, at)
        frames.append(frame)
    return frames
