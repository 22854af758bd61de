"""The FIX 4.4 gateway: an asyncio acceptor on the same order path as the HTTP API."""
