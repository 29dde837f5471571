"""Settings: one frozen object built from the environment and `.env`."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from babel.numbers import UnknownCurrencyError, get_currency_precision
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{8,}$")
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


# Settings that earlier versions read, and what replaced them (`python -m bot` warns).
REMOVED_SETTINGS = {
    "SMSPM_REPORT_PORT": "HTTP_PORT",
    "SMSPM_REPORT_HOST": "HTTP_HOST",
    "SMSPM_REPORT_BASE_URL": "PUBLIC_BASE_URL",
    "PAPSMS_WEBHOOK_PORT": "HTTP_PORT and PAPSMS_WEBHOOK=1",
    "PAPSMS_WEBHOOK_HOST": "HTTP_HOST",
    "CRYPTOPAY_WEBHOOK_PORT": "HTTP_PORT and CRYPTOPAY_WEBHOOK=1",
    "CRYPTOPAY_WEBHOOK_HOST": "HTTP_HOST",
}


class Settings(BaseSettings):
    """Every setting the bot reads. Names match `.env.example` (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    database_path: Path = Path("data/bot.db")
    # sqlite:///path or postgresql://user:pass@host:5432/db; wins over DATABASE_PATH.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=1000)  # PostgreSQL connections
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    currency: str = "USD"
    markup_percent: Decimal = Decimal(30)
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    order_timeout_seconds: int = Field(default=1200, gt=0)
    quote_ttl_seconds: int = Field(default=120, gt=0)
    catalog_refresh_seconds: int = Field(default=900, gt=0)
    stock_check_seconds: int = Field(default=300, gt=0)
    http_timeout_seconds: float = Field(default=15.0, gt=0)
    sandbox: bool = False
    log_level: str = "INFO"

    smspalm_api_key: SecretStr | None = None
    smspalm_base_url: str = "https://smspalm.com/api/v1/handler"
    smspalm_rate: Decimal | None = Field(default=None, gt=0)
    smspalm_rate_limit: int = Field(default=100, gt=0)
    smspalm_servers: Annotated[tuple[str, ...], NoDecode] = ("servertwo", "serverone")

    smspm_hash: SecretStr | None = None
    smspm_token: SecretStr | None = None
    smspm_sender: str = "SMSPM.com"
    smspm_base_url: str = "https://api.smspm.com"
    smspm_rate: Decimal = Field(default=Decimal("1.1"), gt=0)
    smspm_price_default: Decimal = Field(default=Decimal("0.10"), gt=0)
    smspm_rate_limit: int = Field(default=60, gt=0)
    smspm_poll_seconds: float = Field(default=60.0, gt=0)
    smspm_deadline_seconds: int = Field(default=86400, gt=0)
    smspm_report_secret: SecretStr | None = None

    smspool_api_key: SecretStr | None = None
    smspool_base_url: str = "https://api.smspool.net"
    smspool_rate: Decimal = Field(default=Decimal(1), gt=0)
    smspool_rate_limit: int = Field(default=120, gt=0)
    # Rentals: each live rental is polled every RENTAL_POLL_SECONDS (status + messages: two
    # requests), using at most RENTAL_BUDGET_SHARE of SMSPOOL_RATE_LIMIT.
    rental_poll_seconds: float = Field(default=55.0, gt=0, le=60)
    rental_budget_share: float = Field(default=0.75, gt=0, le=1)

    spotsms_api_key: SecretStr | None = None
    spotsms_base_url: str = "https://spotsms.com/api-data.php"
    spotsms_rate: Decimal = Field(default=Decimal(1), gt=0)
    spotsms_rate_limit: int = Field(default=60, gt=0)

    papsms_api_key: SecretStr | None = None
    papsms_base_url: str = "https://papsms.com/api/v1"
    papsms_rate: Decimal = Field(default=Decimal(1), gt=0)
    papsms_rate_limit: int = Field(default=60, gt=0)
    papsms_poll_seconds: float = Field(default=30.0, gt=0)
    papsms_webhook: bool = False
    papsms_webhook_secret: SecretStr | None = None

    # Top-ups: Telegram Stars, Crypto Pay, limits, referrals.
    stars_rate: Decimal = Field(default=Decimal("0.013"), gt=0)
    topup_min: Decimal = Field(default=Decimal(1), gt=0)
    topup_max: Decimal = Field(default=Decimal(1000), gt=0)
    topup_presets: Annotated[tuple[Decimal, ...], NoDecode] = (
        Decimal(5),
        Decimal(10),
        Decimal(25),
        Decimal(50),
    )
    invoice_ttl_seconds: int = Field(default=3600, gt=0)
    referral_percent: Decimal = Field(default=Decimal(5), ge=0, le=100)
    cryptopay_token: SecretStr | None = None
    cryptopay_base_url: str = "https://pay.crypt.bot"
    cryptopay_assets: Annotated[tuple[str, ...], NoDecode] = ("USDT", "TON", "BTC")
    cryptopay_poll_seconds: float = Field(default=30.0, gt=0)
    cryptopay_webhook: bool = False
    cryptopay_webhook_secret: SecretStr | None = None

    # Running the shop.
    # Telegram allows about 30 messages/s. Up to 1000 is accepted for tests and benchmarks
    # against a fake; on Telegram a higher rate only earns 429s, which slow the bot down.
    broadcast_rate: float = Field(default=25.0, gt=0, le=1000)
    backup_dir: Path = Path("data/backups")
    backup_keep: int = Field(default=7, ge=1)
    backup_hour_utc: int = Field(default=3, ge=0, le=23)
    low_balance_warning: Decimal = Field(default=Decimal(10), ge=0)
    # Balances against the ledger and orders against their ledger rows, this often.
    self_check_seconds: int = Field(default=300, gt=0)

    # The HTTP listener (every inbound path), Telegram webhook mode, Redis (what several
    # instances share: request budgets, throttle, FSM, update claims).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)  # 0: no listener (polling mode only)
    public_base_url: str | None = None  # where upstreams reach the listener (SMSPM reports)
    webhook_base_url: str | None = None  # set: Telegram webhook mode; unset: long polling
    webhook_secret: SecretStr | None = None
    redis_url: SecretStr | None = None
    redis_prefix: str = Field(default="numbot", min_length=1, max_length=64)
    # Several instances: each live order is watched by the one instance holding its lease,
    # renewed every third of this; when an instance dies, the others take its orders once
    # the lease runs out. So this bounds how long an order goes unwatched (codes wait, a
    # deadline passes) after a crash. 30 s: a lease survives two missed renewals (a stalled
    # loop, a slow commit) before an order changes hands, a dead instance's orders resume
    # well within any code's life and the order timeout, it ends with the dead instance's
    # registry heartbeat (30 s), and renewing costs one UPDATE per instance every 10 s. An
    # instance that stops cleanly, or restarts on the same machine, hands over at once.
    order_lease_seconds: int = Field(default=30, ge=3, le=3600)

    # Protection.
    throttle_per_second: float = Field(default=2.0, gt=0)
    throttle_burst: int = Field(default=8, gt=0)
    cancel_limit: int = Field(default=5, ge=0)
    cancel_pause_seconds: int = Field(default=3600, gt=0)

    @field_validator("topup_presets", mode="before")
    @classmethod
    def _split_presets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Decimal(p.strip()) for p in value.split(",") if p.strip())
        return value

    @field_validator("cryptopay_assets", mode="before")
    @classmethod
    def _split_assets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip().upper() for p in value.split(",") if p.strip())
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError("BOT_TOKEN must look like 123456789:AAE... (digits, colon, secret)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not all(p.lstrip("-").isdigit() for p in parts):
                raise ValueError("ADMIN_IDS must be comma-separated numeric Telegram user ids")
            return frozenset(int(p) for p in parts)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("smspalm_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip().lower() for p in value.split(",") if p.strip())
        if isinstance(value, (tuple, list)):
            unknown = set(value) - {"serverone", "servertwo"}
            if unknown:
                raise ValueError(f"SMSPALM_SERVERS: unknown server(s) {sorted(unknown)}")
            return tuple(value)
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.strip().upper()
        try:
            get_currency_precision(code)
        except UnknownCurrencyError as exc:  # pragma: no cover - babel raises for unknown codes
            raise ValueError(f"CURRENCY {value!r} is not an ISO 4217 code") from exc
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"CURRENCY {value!r} is not an ISO 4217 code")
        return code

    @field_validator("markup_percent")
    @classmethod
    def _markup_range(cls, value: Decimal) -> Decimal:
        if value < 0 or value > 1000:
            raise ValueError("MARKUP_PERCENT must be between 0 and 1000")
        return value

    @field_validator(
        "telegram_api_url",
        "smspalm_base_url",
        "smspm_base_url",
        "smspool_base_url",
        "spotsms_base_url",
        "papsms_base_url",
        "cryptopay_base_url",
    )
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("public_base_url", "webhook_base_url", mode="before")
    @classmethod
    def _base_url(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not _base_url_ok(value.strip()):
            raise ValueError(
                "must be an http(s) URL without query or fragment, e.g. https://shop.example.com"
            )
        return value.strip().rstrip("/")

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret_shape(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or not _WEBHOOK_SECRET_RE.fullmatch(raw):
            # Telegram's rule for secret_token; the value itself is never echoed.
            raise ValueError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return raw

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url_shape(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        scheme = urlsplit(raw).scheme if isinstance(raw, str) else ""
        if scheme.split("+")[0] not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                "DATABASE_URL must look like sqlite:///data/bot.db or "
                "postgresql://user:password@host:5432/db"
            )
        return raw

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url_shape(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must look like redis://host:6379/0")
        return raw

    @model_validator(mode="after")
    def _listener_needed(self) -> Settings:
        if self.webhook_base_url and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_BASE_URL is set")
        if self.http_port == 0:
            needs = [
                name
                for name, on in (
                    ("WEBHOOK_BASE_URL", bool(self.webhook_base_url)),
                    ("PUBLIC_BASE_URL", bool(self.public_base_url)),
                    ("PAPSMS_WEBHOOK", self.papsms_webhook),
                    ("CRYPTOPAY_WEBHOOK", self.cryptopay_webhook),
                )
                if on
            ]
            if needs:
                raise ValueError(
                    f"HTTP_PORT=0 turns the HTTP listener off, but {', '.join(needs)} "
                    "needs it: set HTTP_PORT to the port it should listen on"
                )
        return self

    @model_validator(mode="after")
    def _provider_needs_rate(self) -> Settings:
        if self.smspalm_api_key and self.smspalm_rate is None:
            raise ValueError(
                "SMSPALM_RATE is required when SMSPALM_API_KEY is set "
                "(shop-currency units per 1 NGN, e.g. 0.00065)"
            )
        if self.topup_min > self.topup_max:
            raise ValueError("TOPUP_MIN must not exceed TOPUP_MAX")
        return self

    @property
    def stars_enabled(self) -> bool:
        """Stars are priced in USD by Telegram; another currency needs an explicit STARS_RATE."""
        return self.currency == "USD" or "stars_rate" in self.model_fields_set

    @property
    def cryptopay_enabled(self) -> bool:
        return self.cryptopay_token is not None and bool(self.cryptopay_token.get_secret_value())

    @property
    def smspm_enabled(self) -> bool:
        return bool(self.smspm_hash and self.smspm_token)

    @property
    def webhook_mode(self) -> bool:
        """Telegram delivers updates to our listener (else the bot long-polls)."""
        return self.webhook_base_url is not None

    @property
    def database(self) -> str:
        """The database URL: DATABASE_URL, else `sqlite:///` + DATABASE_PATH. Contains the
        password: log it only through `storage.db.safe_url`."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.database_path}"

    @property
    def token(self) -> str:
        return self.bot_token.get_secret_value()

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        values = [self.token]
        for secret in (
            self.smspalm_api_key,
            self.smspm_token,
            self.smspm_hash,
            self.smspm_report_secret,
            self.smspool_api_key,
            self.spotsms_api_key,
            self.papsms_api_key,
            self.papsms_webhook_secret,
            self.cryptopay_token,
            self.cryptopay_webhook_secret,
            self.webhook_secret,
        ):
            if secret is not None:
                values.append(secret.get_secret_value())
        if self.redis_url is not None:
            values.append(urlsplit(self.redis_url.get_secret_value()).password or "")
        if self.database_url is not None:
            values.append(urlsplit(self.database_url.get_secret_value()).password or "")
        return [v for v in values if v]


def _base_url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and url.isascii()
    )
