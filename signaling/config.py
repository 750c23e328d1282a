"""Service configuration: defaults < config file (TOML) < environment < command-line flags.

Environment variables are the field names upper-cased with the prefix `ETAPALVELU_`, e.g.
`ETAPALVELU_DATABASE_URL`, `ETAPALVELU_ICE_ADDRESSES='["127.0.0.1"]'`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """A configuration value or file is unusable; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ETAPALVELU_", extra="forbid")

    # Where the HTTP / socket.io server listens.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Public base URL printed to operators; derived from host/port when empty.
    public_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None

    data_dir: Path = Path("data")
    # Empty means SQLite in data_dir: sqlite+aiosqlite:///<data_dir>/etapalvelu.db
    database_url: str = ""
    # Set to share socket.io state between several signaling processes.
    redis_url: str = ""
    # Redis pub/sub channel of this deployment (several deployments may share one Redis).
    redis_channel: str = Field("etapalvelu", min_length=1, max_length=100)

    # Media relay (SFU) addresses: where it binds, and the ICE host candidates it announces.
    # aioice leaves loopback out of its own gathering, so tests set ["127.0.0.1"].
    relay_listen_address: str = "0.0.0.0"
    ice_addresses: list[str] = Field(default_factory=list)
    relay_port_min: int = Field(0, ge=0, le=65535)
    relay_port_max: int = Field(0, ge=0, le=65535)
    # Transport-wide congestion control feedback to publishers, on their video (README
    # "Bandwidth"; tests/resilience/test_two_way_bandwidth.py: a two-way Chromium call ramps
    # up both ways with it).
    relay_transport_cc: bool = True
    # Where calls get their media relay (signaling/transport/relay_placement.py): "local" runs one
    # in-process relay (the one-machine default); "nodes" places each call on one of the relay
    # nodes (`etapalvelu relay`) registered in Redis under `redis_channel`, drives it over its
    # control API with `relay_secret`, and moves calls off nodes that die or drain.
    relay_mode: Literal["local", "nodes"] = "local"
    relay_secret: str = ""
    relay_secret_file: Path | None = None
    # How often this process looks for calls on dead or draining nodes, and how long a moved
    # call's old room is kept on a draining node (the clients rejoin in that time).
    relay_failover_interval: float = Field(0.5, gt=0, le=60)
    relay_move_grace: float = Field(5.0, ge=0, le=300)
    relay_request_timeout: float = Field(5.0, gt=0, le=60)

    # ICE servers handed to clients and to the relay. Always explicit: an empty list means
    # none (aiortc would otherwise fall back to a public STUN server).
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    # Shared secrets of coturn's `use-auth-secret`; the first one signs new credentials.
    turn_secrets: list[str] = Field(default_factory=list)
    turn_credential_ttl: int = Field(600, ge=30, le=86400)

    session_ttl_seconds: int = Field(8 * 3600, ge=60)
    # At least 48 KiB: a page of chat history (in_call/chat.py, up to 44,000 characters of
    # ciphertext) must fit in one event.
    max_message_bytes: int = Field(64 * 1024, ge=48 * 1024)
    # Per-socket event budget: `rate_limit_events` per `rate_limit_window` seconds.
    rate_limit_events: int = Field(50, ge=1)
    rate_limit_window: float = Field(1.0, gt=0)
    # How often each process looks for sockets of disabled users/kiosks or expired sessions.
    revocation_check_seconds: float = Field(2.0, gt=0)
    # Sockets one person or one kiosk may hold open at once (a console in two
    # tabs, a kiosk page and its endpoint agent, a reload overlapping the old socket).
    max_sockets_per_user: int = Field(10, ge=1, le=1000)
    max_sockets_per_endpoint: int = Field(6, ge=1, le=1000)
    # With redis_url (signaling/flow/leases.py): the socket limits above count every process's
    # sockets, one person's or kiosk's events over all his sockets and processes are limited to
    # `rate_limit_principal_events` per `rate_limit_window`, and each process holds a lease of
    # `process_lease_seconds` (renewed every third of it): when it lapses (a killed process),
    # another process marks that process's people and kiosks offline.
    rate_limit_principal_events: int = Field(100, ge=1)
    process_lease_seconds: float = Field(5.0, ge=0.5, le=300)

    # Addresses (IPs or networks) of the load balancers in front of this process: a request
    # from one of them is counted (login limits) by the client address in X-Forwarded-For;
    # from anyone else X-Forwarded-For is ignored (it could be forged).
    trusted_proxies: list[str] = Field(default_factory=list)

    # Login flood protection (signaling/directory/login_guard.py): at most this many argon2 checks
    # at
    # once, at most `login_queue_limit` waiting for one (more are refused at once with 503).
    login_hash_concurrency: int = Field(4, ge=1, le=256)
    login_queue_limit: int = Field(32, ge=0, le=10_000)
    # An HTTP connection that is idle, or has not sent a whole request head, for this many
    # seconds is closed (half-open and slow clients; aiohttp's own default is an hour).
    # WebSockets and requests in progress are not affected.
    http_idle_timeout: float = Field(30.0, gt=0, le=3600)

    # /metrics: with a token, scrapers send `Authorization: Bearer <token>`; with an address
    # ("host:port") it is served there, unauthenticated, for a private monitoring network;
    # with neither it answers only requests made from this machine (loopback).
    metrics_token: str = ""
    metrics_address: str = ""
    # /readyz reports "not ready" when the data folder's disk has less free space than this.
    ready_min_free_bytes: int = Field(64 * 1024 * 1024, ge=0)

    # At most what the database's INTEGER columns hold (sizes are stored; db.DB_INT_MAX).
    max_document_bytes: int = Field(50 * 1024 * 1024, ge=1024, le=2**31 - 1)
    # Ciphertext of a document is deleted once every recipient has it, or after this long.
    document_retention_seconds: int = Field(3600, ge=10)
    # The kiosk tests its camera, microphone, speaker and the relay at start-up and then this
    # often (signaling/flow/kiosk_health.py, endpoint/static/kiosk/self-test.js).
    kiosk_self_test_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)

    # Checkpoints of the service log (signaling/records/log_checkpoints.py): the server's Ed25519
    # key
    # (created at first start, mode 0600) signs the log's head, appended as one JSON line to
    # an append-only file after every filed record and at least every `log_checkpoint_seconds`
    # when the head moved. Empty paths mean data_dir/log-checkpoint-key.pem and
    # data_dir/log-checkpoints.jsonl. `log_id` names this deployment's log in each checkpoint.
    log_checkpoint_key: Path | None = None
    log_checkpoint_file: Path | None = None
    log_checkpoint_seconds: float = Field(10.0, gt=0, le=3600)
    log_id: str = Field("etapalvelu", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")

    # Service flow (signaling/flow/appointments.py, queues.py): a booked customer may check in this
    # early, and is released as a no-show this long after the booked time.
    appointment_checkin_early_minutes: int = Field(60, ge=0, le=24 * 60)
    appointment_no_show_grace_minutes: int = Field(15, ge=0, le=24 * 60)
    # Estimated wait when an authority has no recent calls to average over.
    default_service_minutes: int = Field(8, ge=1, le=240)

    # Calls that lose people (signaling/flow/call_watch.py, every `call_watch_interval` seconds):
    # a call whose expert has not been connected for `expert_return_seconds` ends
    # ("expert_lost") and its kiosk may take a new ticket at the head of the same line within
    # `requeue_window_seconds`; a call nobody is connected to for `empty_call_seconds` ends
    # ("abandoned").
    expert_return_seconds: float = Field(60.0, gt=0, le=24 * 3600)
    empty_call_seconds: float = Field(30.0, gt=0, le=24 * 3600)
    requeue_window_seconds: float = Field(600.0, gt=0, le=24 * 3600)
    call_watch_interval: float = Field(1.0, gt=0, le=600)

    # The customer at home (signaling/flow/remote_customer.py, README "The customer at home"): the
    # identity step of `/join/<token>` — "none" (skipped) or "oidc", an OpenID Connect provider
    # (authorization code + PKCE; the id_token's issuer, audience, nonce and RS256/ES256
    # signature against the provider's JWKS are checked). `oidc_issuer` must be https unless
    # `oidc_allow_http` (a provider on loopback in tests).
    join_identity: Literal["none", "oidc"] = "none"
    oidc_issuer: str = Field("", max_length=500)
    oidc_client_id: str = Field("", max_length=200)
    oidc_client_secret: str = Field("", max_length=500)
    oidc_scope: str = Field("openid", max_length=200)
    oidc_allow_http: bool = False

    # Booking (signaling/booking/booking.py, README "Booking"): slots of this many minutes unless an
    # authority has its own (`admin booking slot-length`), bookable from
    # `booking_min_lead_minutes` ahead up to `booking_days_ahead` days.
    booking_slot_minutes: int = Field(30, ge=5, le=480)
    booking_min_lead_minutes: int = Field(60, ge=0, le=7 * 24 * 60)
    booking_days_ahead: int = Field(28, ge=1, le=366)
    # Reminders this many hours before the booked time (each sent once); the outbox sweep runs
    # every `booking_sweep_seconds`, and a message is tried at most `booking_send_attempts`
    # times (a failure never fails the booking).
    booking_reminder_hours: list[float] = Field(default_factory=lambda: [24.0, 2.0])
    booking_sweep_seconds: float = Field(30.0, gt=0, le=3600)
    booking_send_attempts: int = Field(5, ge=1, le=50)
    # Requests to the public booking pages' API per address per minute (bookings: a tenth).
    booking_rate_per_minute: int = Field(60, ge=1, le=100_000)
    # E-mail (SMTP); no host: no e-mails. smtp_tls: "none", "starttls" or "tls" (implicit).
    smtp_host: str = ""
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_from: str = "etapalvelu@localhost"
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = Field(10.0, gt=0, le=120)
    # SMS through an HTTP gateway (POST JSON {to, text, sender} with a bearer token); no URL:
    # no SMS.
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    sms_sender: str = Field("Etapalvelu", max_length=11)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies: {item!r} is not an IP address or network"
                ) from exc
        return value

    @field_validator("ice_addresses")
    @classmethod
    def _addresses_are_ips(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_address(item)
            except ValueError as exc:
                raise ValueError(f"ice_addresses: {item!r} is not an IP address") from exc
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.relay_port_min > self.relay_port_max:
            raise ValueError("relay_port_min must not exceed relay_port_max")
        if self.relay_mode == "nodes":
            if not self.redis_url:
                raise ValueError("relay_mode 'nodes' needs redis_url (the relay registry)")
            if not (self.relay_secret or self.relay_secret_file):
                raise ValueError("relay_mode 'nodes' needs relay_secret or relay_secret_file")
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ValueError("metrics_token must be at least 16 characters")
        if self.metrics_address:
            host, sep, port = self.metrics_address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("metrics_address must be host:port")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'etapalvelu.db').resolve()}"

    def relay_control_secret(self) -> str:
        """The relay nodes' shared secret (the file wins; surrounding whitespace dropped)."""
        if self.relay_secret_file is not None:
            try:
                return self.relay_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read relay_secret_file {self.relay_secret_file}: {exc.strerror}"
                ) from exc
        return self.relay_secret

    @property
    def checkpoint_key_path(self) -> Path:
        return self.log_checkpoint_key or self.data_dir / "log-checkpoint-key.pem"

    @property
    def checkpoint_file_path(self) -> Path:
        return self.log_checkpoint_file or self.data_dir / "log-checkpoints.jsonl"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides.

    Overrides whose value is None are ignored, so argparse defaults of None pass through.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
    explicit = {k: v for k, v in overrides.items() if v is not None}
    try:
        # Environment beats the file; explicit overrides beat both.
        from_env = Settings()
        env_set = from_env.model_fields_set
        merged = {**file_values, **{k: getattr(from_env, k) for k in env_set}, **explicit}
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    except Exception as exc:  # e.g. unparsable JSON in an ETAPALVELU_* list variable
        raise ConfigError(f"invalid configuration: {exc}") from exc
