"""Settings for every process of the pipeline: one pydantic-settings class, prefix RYLA_.

Built by ``get_settings()`` and passed explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import SettingsError

__all__ = [
    "GeneratorChoice",
    "LogFormat",
    "MemoryModeSetting",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_secret_key",
]

_WEAK_SECRETS = {"changeme", "changethis", "secret", "password", "ryla"}


class LogFormat(StrEnum):
    TEXT = "text"  # for people: one line per record, local time with its UTC offset
    JSON = "json"  # for log shippers: one JSON object per line


class GeneratorChoice(StrEnum):
    AUTO = "auto"
    ZIMAGE = "zimage"
    PREVIEW = "preview"


class MemoryModeSetting(StrEnum):
    AUTO = "auto"
    FULL = "full"
    BALANCED = "balanced"
    LOW = "low"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RYLA_", env_file=".env", extra="ignore")

    data_dir: Path = Path("ryla-data")
    database_url: str = ""
    broker_url: str = ""
    generator: GeneratorChoice = GeneratorChoice.AUTO
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""

    tick_seconds: float = Field(15.0, gt=0, le=300)
    lease_seconds: int = Field(600, ge=10)
    # A claim no worker has started comes back this long after it was due (its own publish
    # time for a publish claimed ahead): a dead worker's or a lost message's claims return fast.
    claim_grace_seconds: int = Field(10, ge=1, le=600)
    max_attempts: int = Field(3, ge=1, le=20)
    publish_ahead_seconds: int = Field(120, ge=0, le=300)
    grace_seconds: int = Field(900, ge=0)
    horizon_days: int = Field(14, ge=1, le=366)
    # The longest horizon a calendar may ask for; the beat expands this many calendars a tick.
    max_horizon_days: int = Field(366, ge=1, le=366)
    expand_batch: int = Field(500, ge=1, le=100_000)
    # Posts a local day may hold per influencer (an influencer may set its own, up to 100):
    # half of the 50 a day Meta documents in places, so even a rolling 24 hours stays under it.
    max_posts_per_day: int = Field(25, ge=1, le=100)
    claim_batch: int = Field(200, ge=1, le=10_000)
    redis_visibility_timeout: int = Field(3600, ge=60)
    gpu_cost_per_hour: float = Field(0.0, ge=0)
    # Throttled publishes wait without spending a try, this long at first (when the target does
    # not say), and give up this long after the post was due.
    throttle_wait_seconds: float = Field(60.0, gt=0, le=3600)
    throttle_budget_seconds: int = Field(3600, ge=0, le=7 * 86_400)
    # How long one HTTP call to a publish target may take before its answer counts as lost.
    http_timeout_seconds: float = Field(30.0, gt=0, le=300)
    # Instagram container polling: first pause and cap, in seconds (back-off doubles between).
    graph_poll_first_delay: float = Field(1.0, gt=0, le=60)
    graph_poll_max_delay: float = Field(30.0, gt=0, le=300)
    media_url_ttl_hours: int = Field(24, ge=1, le=168)

    # Observability (issue 13): logs, heartbeats, notifications, metrics.
    log_format: LogFormat = LogFormat.TEXT
    heartbeat_seconds: float = Field(30.0, gt=0, le=300)
    # How often the beat asks an io worker to look for what people must be told.
    notify_scan_seconds: float = Field(30.0, gt=0, le=3600)
    # A notification send may run this long before its run is presumed dead.
    notify_lease_seconds: int = Field(120, ge=5, le=3600)
    notify_max_attempts: int = Field(5, ge=1, le=50)
    # "No GPU worker seen" is told after this long without one while posts wait to generate.
    gpu_silence_seconds: int = Field(600, ge=5, le=86_400)
    # When set, /metrics answers only requests with "Authorization: Bearer <token>".
    metrics_token: str = ""

    # Z-Image-Turbo (the ``zimage`` generator): a hub repo id through the HF cache, or a folder.
    zimage_model_id: str = "Tongyi-MAI/Z-Image-Turbo"
    zimage_revision: str | None = None
    zimage_path: Path | None = None
    # full (~22 GiB), balanced (16 GiB cards), low (4 GiB), or auto: the fastest that fits.
    zimage_memory_mode: MemoryModeSetting = MemoryModeSetting.AUTO
    # Compile the transformer's blocks on CUDA; the worker compiles every size before it is ready.
    zimage_compile: bool = True
    # Compiled kernels kept across restarts; unset: <data_dir>/compile-cache.
    zimage_compile_cache_dir: Path | None = None
    # Images per pipeline call at most; the free GPU memory may allow fewer.
    zimage_max_batch: int = Field(2, ge=1, le=4)
    # Run Z-Image on the CPU (float32): only for tests and dry runs with tiny weights.
    zimage_allow_cpu: bool = False

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("zimage_memory_mode", mode="before")
    @classmethod
    def _offload_was_replaced(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "offload":
            raise ValueError(
                "offload was removed (12 s an image): use balanced for 16 GB cards, low for "
                "4 GB cards, or auto"
            )
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: str) -> str:
        if value and (value.lower() in _WEAK_SECRETS or len(value) < 32):
            raise ValueError(
                "RYLA_SECRET_KEY is too weak: use at least 32 random characters "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @model_validator(mode="after")
    def _shared_deployments_need_a_key(self) -> Settings:
        # Every process of a shared deployment must encrypt and sign with the same key.
        if self.database_url and not self.database_url.startswith("sqlite") and not self.secret_key:
            raise ValueError(
                "RYLA_SECRET_KEY is required with a shared database: set the same 32+ random "
                "characters for every process"
            )
        return self

    @model_validator(mode="after")
    def _visibility_above_the_longest_lease(self) -> Settings:
        # Redis hands an unacked message to another worker after the visibility timeout: a
        # message held for a claimed-ahead publish plus its run must stay with its worker.
        longest = self.lease_seconds + self.publish_ahead_seconds
        if self.redis_visibility_timeout <= longest:
            raise ValueError(
                f"RYLA_REDIS_VISIBILITY_TIMEOUT ({self.redis_visibility_timeout} s) must exceed "
                "the longest lease, RYLA_LEASE_SECONDS + RYLA_PUBLISH_AHEAD_SECONDS "
                f"({longest} s): "
                f"raise it to at least {longest + 60} or lower the lease"
            )
        return self

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        # The embedded default keeps everything under data_dir: no server to install.
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'ryla.db'}"
        if not self.broker_url:
            self.broker_url = "filesystem://localhost/"  # the host is unused; kombu wants one
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def metrics_dir(self) -> Path:
        """Prometheus multi-process files: one folder per process tree."""
        return self.data_dir / "metrics"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and ``.env``), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]


def load_secret_key(settings: Settings) -> str:
    """The key that encrypts secrets at rest.

    ``RYLA_SECRET_KEY`` when set; otherwise the embedded default keeps a random key in
    ``data_dir/secret.key`` (mode 0600), created on first use, so a laptop needs no setup.
    """
    if settings.secret_key:
        return settings.secret_key
    key_file = settings.data_dir / "secret.key"
    if key_file.exists():
        return key_file.read_text().strip()
    if not settings.is_sqlite:
        raise SettingsError(
            "RYLA_SECRET_KEY is not set: a shared deployment needs one key for every process"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_name(f".secret.key.{secrets.token_hex(8)}")
    tmp.write_text(secrets.token_urlsafe(32))
    tmp.chmod(0o600)
    try:
        os.link(tmp, key_file)  # atomic and refuses to overwrite: two processes agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return key_file.read_text().strip()
