"""`earshot serve`: live callers over WebSocket and WebRTC, many calls per process.

See `earshot.server.app` for the application factory and how to add endpoints.
"""
