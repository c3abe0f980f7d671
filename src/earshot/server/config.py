"""Settings of one `earshot serve` process and the typed app keys every endpoint reads.

A handler reads the shared objects as ``request.app[CONFIG_KEY]`` (the `ServerConfig`) and
``request.app[CALLS_KEY]`` (the `CallRegistry`); `earshot.server.app.build_app` sets both.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from earshot.server.registry import CallRegistry


class ServerConfigError(ValueError):
    """The server cannot start with these settings; the message names the fix."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of one `earshot serve` process.

    Attributes:
        host: interface to bind. Loopback (127.0.0.1, ::1, localhost) by default; anything
            else requires ``token`` and ``allowed_origins``.
        port: TCP port.
        token: shared secret a client must present on connect (``?token=`` query parameter or
            ``Authorization: Bearer`` header), or None on loopback.
        allowed_origins: browser origins (``scheme://host:port``) allowed to open a call; on
            loopback the page's own origin is always allowed.
        max_calls: concurrent calls admitted; the next one is refused (HTTP 503 / a WebSocket
            ``error`` message with code ``server_full``).
        max_message_bytes: largest WebSocket message accepted; a bigger one closes that call.
        out_dir: where each call's folder (turns.jsonl, report.md, latency.png,
            conversation.wav) is written.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    max_calls: int = 8
    max_message_bytes: int = 64 * 1024
    out_dir: Path = Path("out/calls")

    def __post_init__(self) -> None:
        if not is_loopback(self.host):
            if not self.token:
                raise ServerConfigError(
                    f"binding {self.host} exposes the server beyond this machine: "
                    "pass --token SECRET (clients must present it) and --allowed-origins"
                )
            if not self.allowed_origins:
                raise ServerConfigError(
                    f"binding {self.host} needs --allowed-origins (comma-separated, "
                    "e.g. https://agent.example.com) so other sites cannot open calls"
                )
        if self.max_calls < 1:
            raise ServerConfigError(f"--max-calls must be >= 1, got {self.max_calls}")
        if self.max_message_bytes < 1024:
            raise ServerConfigError(
                f"max message size must be >= 1024 bytes, got {self.max_message_bytes}"
            )

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CONFIG_KEY = web.AppKey("earshot_config", ServerConfig)
CALLS_KEY = web.AppKey("earshot_calls", CallRegistry)


def parse_origins(text: str | None) -> tuple[str, ...]:
    """``"https://a.example, https://b.example"`` → a tuple of origins (no trailing slash)."""
    if not text:
        return ()
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
