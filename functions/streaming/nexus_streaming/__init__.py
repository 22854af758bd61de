"""NexusTrade streaming: the WebSocket API's routes and the execution-events fan-out."""
