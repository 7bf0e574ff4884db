"""The `cti` configuration section: the CSTA XML server's ports, limits and application accounts."""
from __future__ import annotations

from pydantic import Field

from appliance.schema import Section
from appliance.service import ServiceConfig


class CtiAccount(Section):
    """A CTI application (a TAPI service provider, a CRM connector): monitors and drives the devices of
    its scope. Its password is set once in the web admin and stored as an argon2 hash."""

    name: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$", description="the user name the application signs in with")
    password_hash: str = Field(min_length=20, description="argon2 hash of the application's password")
    scope: list[str] = Field(default_factory=list, max_length=1000,
                             description="extensions it may monitor and drive; ['*'] for every extension")
    enabled: bool = True


class ApiToken(Section):
    """A JSON API token (a web app, a CRM): made in the web admin, shown once; only its SHA-256 is kept
    (the token has 256 random bits, so a fast hash is enough)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$", description="what the token is for")
    token_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, hex")
    scope: list[str] = Field(default_factory=list, max_length=1000,
                             description="extensions it may see and drive; ['*'] for every extension")
    created: float = Field(default=0.0, description="when it was made (Unix time)")
    enabled: bool = True


class CtiConfig(ServiceConfig):
    """CSTA Phase III XML (ECMA-323) over TCP and TLS with ECMA-354 application sessions. Staff sign in
    with their own login and reach their own extension only; application accounts reach their scope."""

    enabled: bool = Field(default=False, description="the CTI server listens (off until the admin turns it on)")
    tcp_port: int = Field(default=2555, ge=0, le=65535, description="CSTA XML over TCP (0: none)")
    tls_port: int = Field(default=2556, ge=0, le=65535, description="CSTA XML over TLS (0: none)")
    lab_tcp_port: int = Field(default=12555, ge=0, le=65535, description="lab mode, on 127.0.0.1 (0: any free)")
    lab_tls_port: int = Field(default=12556, ge=0, le=65535, description="lab mode, on 127.0.0.1 (0: any free)")
    max_sessions: int = Field(default=500, ge=1, le=5000, description="application sessions at once")
    max_monitors: int = Field(default=200, ge=1, le=5000, description="monitors per session")
    requests_per_second: int = Field(default=50, ge=1, le=10000, description="requests per session and second")
    session_duration: int = Field(default=180, ge=10, le=3600,
                                  description="seconds a session lives without ResetApplicationSessionTimer")
    accounts: list[CtiAccount] = Field(default_factory=list, max_length=200)
    api_port: int = Field(default=2558, ge=0, le=65535, description="JSON API and event WebSocket over HTTPS (0: none)")
    lab_api_port: int = Field(default=12558, ge=0, le=65535,
                              description="lab mode, plain HTTP on 127.0.0.1 (0: any free)")
    api_max_connections: int = Field(default=500, ge=1, le=10000, description="JSON API connections at once")
    api_max_message: int = Field(default=16384, ge=1024, le=1048576,
                                 description="bytes of a request body or a WebSocket message")
    api_requests_per_second: int = Field(default=10, ge=1, le=10000, description="requests per token and second")
    api_idle_timeout: int = Field(default=120, ge=10, le=3600,
                                  description="seconds an event WebSocket may stay silent (clients ping)")
    api_tokens: list[ApiToken] = Field(default_factory=list, max_length=200)
    desk_token_minutes: int = Field(default=15, ge=1, le=720,
                                    description="life of the token the staff desk page gets for its user")
    crm_url: str = Field(default="", max_length=500, pattern=r"^(https?://\S*\{number\}\S*)?$",
                         description="the desk's 'open in CRM' link; {number} is the caller's number")
