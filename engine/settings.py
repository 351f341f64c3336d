"""Every setting of the engine, from the environment (or a `.env` file)."""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        alias="SIP_DATA_DIR",
        description="where the embedded database, secret key and demo output live",
    )
    database_url: str | None = Field(
        default=None, alias="DATABASE_URL", description="SQLAlchemy URL; default: a SQLite file in SIP_DATA_DIR"
    )
    migration_database_url: str | None = Field(
        default=None,
        alias="SIP_MIGRATION_DATABASE_URL",
        description="SQLAlchemy URL of the role that owns the tables, used only to migrate (and to grant the "
        "application's role, DATABASE_URL's, what it needs); default: DATABASE_URL",
    )
    secret_key: str | None = Field(
        default=None,
        alias="SIP_SECRET_KEY",
        description="key for access tokens; default: generated once into SIP_DATA_DIR",
    )
    max_request_bytes: int = Field(
        default=2_000_000,
        alias="SIP_MAX_REQUEST_BYTES",
        ge=10_000,
        description="the largest application accepted (API and import)",
    )
    max_body_bytes: int | None = Field(
        default=None,
        alias="SIP_MAX_BODY_BYTES",
        ge=10_000,
        description="the largest request body the API reads, on every route, checked before anything else "
        "(413 at once); at least SIP_MAX_REQUEST_BYTES; default: twice SIP_MAX_REQUEST_BYTES (4 MB)",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        alias="SIP_PUBLIC_BASE_URL",
        description="where applicants reach the status API (used in letters)",
    )
    programme_email: str = Field(
        default="sip@example.org", alias="SIP_PROGRAMME_EMAIL", description="the secretariat's address named in letters"
    )

    reviewer_link_days: int = Field(
        default=30,
        alias="SIP_REVIEWER_LINK_DAYS",
        ge=1,
        le=365,
        description="days a reviewer's sign-in link stays valid (it is used once)",
    )
    reviewer_session_hours: int = Field(
        default=12,
        alias="SIP_REVIEWER_SESSION_HOURS",
        ge=1,
        le=24 * 30,
        description="hours a reviewer's session lasts after signing in",
    )

    console_idle_minutes: int = Field(
        default=30,
        alias="SIP_CONSOLE_IDLE_MINUTES",
        ge=1,
        le=24 * 60,
        description="minutes without a request after which an officer's console session ends",
    )
    console_session_hours: int = Field(
        default=10,
        alias="SIP_CONSOLE_SESSION_HOURS",
        ge=1,
        le=24 * 7,
        description="hours after signing in that an officer's console session ends, however used",
    )

    oidc_issuer: str | None = Field(
        default=None,
        alias="SIP_OIDC_ISSUER",
        description="single sign-on for the console: the OpenID Connect provider's issuer URL (its "
        "/.well-known/openid-configuration is read); unset: passwords only",
    )
    oidc_client_id: str | None = Field(default=None, alias="SIP_OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(default=None, alias="SIP_OIDC_CLIENT_SECRET")
    oidc_scopes: str = Field(default="openid email profile", alias="SIP_OIDC_SCOPES")
    oidc_require_verified_email: bool = Field(
        default=True,
        alias="SIP_OIDC_REQUIRE_VERIFIED_EMAIL",
        description="sign in only a person whose ID token says their e-mail address is confirmed "
        "(email_verified: true); false only for a provider that never says so and whose addresses "
        "its users cannot choose (e.g. an organisation's own directory)",
    )
    oidc_name: str | None = Field(
        default=None,
        alias="SIP_OIDC_NAME",
        max_length=80,
        description="how the sign-in page names the provider (its button: Sign in with ...); default: "
        "single sign-on, in the page's language",
    )

    funder_org_id: str = Field(
        default="XM-DAC-41116",
        alias="SIP_FUNDER_ORG_ID",
        description="the funding organisation's org-id in the open data (UNEP, which hosts "
        "the programme, by its DAC code)",
    )
    funder_name: str = Field(
        default="Specific International Programme of the Minamata Convention on Mercury (hosted by UNEP)",
        alias="SIP_FUNDER_NAME",
    )
    grant_id_prefix: str = Field(
        default="XM-DAC-41116",
        alias="SIP_GRANT_ID_PREFIX",
        description="the stable prefix of the grants' identifiers in the open data",
    )

    notifications_backend: Literal["file", "smtp"] = Field(
        default="file",
        alias="NOTIFICATIONS_BACKEND",
        description="file: one .eml file per message in SIP_OUTBOX_DIR (the embedded default); smtp: a mail server",
    )
    outbox_dir: Path | None = Field(
        default=None,
        alias="SIP_OUTBOX_DIR",
        description="where the file backend writes messages; default: SIP_DATA_DIR/mail",
    )
    smtp_host: str = Field(default="127.0.0.1", alias="SMTP_HOST")
    smtp_port: int | None = Field(
        default=None,
        alias="SMTP_PORT",
        ge=1,
        le=65535,
        description="default: 465 with SMTP_SECURITY=tls, 587 with starttls, 25 with none",
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(default="starttls", alias="SMTP_SECURITY")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_timeout: float = Field(default=30, alias="SMTP_TIMEOUT", gt=0)
    mail_from: str | None = Field(
        default=None, alias="MAIL_FROM", description="the sender of every message; default: SIP_PROGRAMME_EMAIL"
    )
    delivery_attempts: int = Field(
        default=6,
        alias="SIP_DELIVERY_ATTEMPTS",
        ge=1,
        le=50,
        description="failed sends before a message is marked failed",
    )
    delivery_backoff_seconds: int = Field(
        default=60,
        alias="SIP_DELIVERY_BACKOFF_SECONDS",
        ge=1,
        le=86400,
        description="wait after the first failure; doubled after each next one",
    )

    templates_dir: Path | None = Field(
        default=None,
        alias="SIP_TEMPLATES_DIR",
        description="the secretariat's edited message templates; a file there "
        "replaces the engine's template of the same name",
    )
    files_dir: Path | None = Field(
        default=None,
        alias="SIP_FILES_DIR",
        description="the files the engine makes and serves later (the committee's "
        "bundles); default: SIP_DATA_DIR. On several machines, a folder "
        "they all mount",
    )
    db_pool_size: int = Field(
        default=16,
        alias="SIP_DB_POOL_SIZE",
        ge=1,
        le=200,
        description="connections each process keeps open to the database, plus max(4, half as many) again under "
        "load; on PostgreSQL as many again for the status lookups (the API's workers times the sum must stay "
        "under its max_connections: 40 a worker at the default 16)",
    )
    migrate_on_start: bool = Field(
        default=True,
        alias="SIP_MIGRATE_ON_START",
        description="apply the database migrations when a command, the API or a flow "
        "starts; false where `sip db upgrade` is run as a step of its own, "
        "and the others only check the schema is current",
    )

    rate_limit_storage: str = Field(
        default="memory://",
        alias="SIP_RATE_LIMIT_STORAGE",
        description="where the rate limits count (a storage URI of the `limits` library): memory:// "
        "counts in each API process; redis://host:6379 shares the counts between processes and machines",
    )
    rate_limit_failed_attempts: str = Field(
        default="10/minute;100/hour",
        alias="SIP_RATE_LIMIT_FAILED_ATTEMPTS",
        description="refused secrets (an unknown link, token, access code or key) a source may send on "
        "the routes that take one before they answer 429 (`limits` notation, `;` between limits)",
    )
    rate_limit_link_requests: str = Field(
        default="5/minute;20/hour",
        alias="SIP_RATE_LIMIT_LINK_REQUESTS",
        description="requests that send a link by e-mail a source may send: a new reviewer sign-in link "
        "(POST /reviewer/links), a new draft in the applicant portal or its link again (/apply/start, /apply/links)",
    )

    _generated_key: bytes | None = PrivateAttr(default=None)

    secretariat_keys: str = Field(
        default="",
        alias="SIP_SECRETARIAT_KEYS",
        description="API keys of an older installation as name:sha256 pairs, comma-separated (full scope, no "
        "expiry); `sip keys new NAME` keeps new keys in the database",
    )

    secretariat_key_days: int = Field(
        default=365,
        alias="SIP_SECRETARIAT_KEY_DAYS",
        ge=1,
        le=3650,
        description="days a secretariat API key made by `sip keys new` works, unless it says otherwise",
    )

    def secretariat_key_hashes(self) -> dict[str, str]:
        """sha256 hex of each key -> the name of the person it belongs to."""
        pairs = [p.strip() for p in self.secretariat_keys.split(",") if p.strip()]
        found = {}
        for pair in pairs:
            name, _, digest = pair.rpartition(":")
            if not name or len(digest) != 64:
                raise ValueError(
                    f"SIP_SECRETARIAT_KEYS: {pair!r} is not name:sha256 (new keys are made with "
                    "`sip keys new NAME` and kept in the database)"
                )
            found[digest.lower()] = name
        return found

    @field_validator("rate_limit_failed_attempts", "rate_limit_link_requests")
    @classmethod
    def _rates(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate: write e.g. 10/minute, or several as 10/minute;100/hour"
            ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_storage(cls, value: str) -> str:
        from limits.storage import SCHEMES  # type: ignore[attr-defined]  # the schemes it knows, by name

        scheme = value.split("://", 1)[0]
        if "://" not in value or scheme not in SCHEMES or scheme.startswith("async+"):
            known = ", ".join(sorted(s for s in SCHEMES if not s.startswith("async+")))
            raise ValueError(f"{value!r} is not a storage the rate limits know: its scheme is one of {known}")
        return value

    @field_validator("mail_from", "programme_email")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is not None and not (
            value.isascii() and value.count("@") == 1 and "." in value.rsplit("@", 1)[1] and " " not in value
        ):
            raise ValueError(
                f"{value!r} is not a plain ASCII e-mail address (e.g. sip@example.org): messages are sent from it"
            )
        return value

    @model_validator(mode="after")
    def _smtp_credentials(self) -> Settings:
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("SMTP_USERNAME is set without SMTP_PASSWORD: set both, or neither")
        if self.smtp_username and self.smtp_security == "none":
            raise ValueError(
                "SMTP_USERNAME with SMTP_SECURITY=none would send the password in clear: set "
                "SMTP_SECURITY=starttls or tls"
            )
        return self

    @model_validator(mode="after")
    def _single_sign_on(self) -> Settings:
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise ValueError(
                "SIP_OIDC_ISSUER is set without SIP_OIDC_CLIENT_ID and SIP_OIDC_CLIENT_SECRET: set the client the "
                "provider registered for the console (its redirect address: <SIP_PUBLIC_BASE_URL>/console/sso/"
                "callback), or unset SIP_OIDC_ISSUER"
            )
        if self.oidc_issuer and not self.oidc_issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("SIP_OIDC_ISSUER must be an https:// address (http only on this machine, for a test)")
        return self

    @model_validator(mode="after")
    def _body_holds_an_application(self) -> Settings:
        if self.max_body_bytes is not None and self.max_body_bytes < self.max_request_bytes:
            raise ValueError(
                f"SIP_MAX_BODY_BYTES ({self.max_body_bytes}) is below SIP_MAX_REQUEST_BYTES "
                f"({self.max_request_bytes}): the API would refuse applications intake accepts. "
                "Raise SIP_MAX_BODY_BYTES, or lower SIP_MAX_REQUEST_BYTES"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 32 or value.lower() in {"changeme", "secret", "change-me"}):
            raise ValueError("SIP_SECRET_KEY must be at least 32 random characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def body_limit(self) -> int:
        """The most the API reads of any request body (api/limits.py): room for an
        application at intake's limit, whose own 413 then answers, and for batches."""
        return self.max_body_bytes or 2 * self.max_request_bytes

    @property
    def sender(self) -> str:
        return self.mail_from or self.programme_email

    @property
    def mail_folder(self) -> Path:
        return self.outbox_dir or self.data_dir / "mail"

    @property
    def files_folder(self) -> Path:
        return self.files_dir or self.data_dir

    def relative_folders(self) -> list[str]:
        """The settings naming a folder this configuration uses by a relative path:
        another process in another working folder (a Prefect worker's flow run)
        would read and write elsewhere."""
        used = [("SIP_FILES_DIR" if self.files_dir else "SIP_DATA_DIR", self.files_folder)]
        if self.database_url is None or self.secret_key is None:
            used.append(("SIP_DATA_DIR", self.data_dir))
        if self.notifications_backend == "file":
            used.append(("SIP_OUTBOX_DIR" if self.outbox_dir else "SIP_DATA_DIR", self.mail_folder))
        if self.templates_dir is not None:
            used.append(("SIP_TEMPLATES_DIR", self.templates_dir))
        return sorted({name for name, folder in used if not folder.is_absolute()})

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or {"tls": 465, "starttls": 587, "none": 25}[self.smtp_security]

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sip.db').resolve()}"

    @property
    def migration_url(self) -> str:
        """Where migrations run: as the tables' owner where that is another role."""
        return self.migration_database_url or self.url

    def key(self) -> bytes:
        """The secret key: the setting, or one generated once and kept in the data folder."""
        if self.secret_key:
            return self.secret_key.encode()
        if self._generated_key is None:
            self._generated_key = self._read_or_generate_key()
        return self._generated_key

    def _read_or_generate_key(self) -> bytes:
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".secret_key.")
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # atomic: the first process to get here wins
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
