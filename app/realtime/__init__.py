"""The realtime service: WebSocket connections fed by Redis pub/sub."""
