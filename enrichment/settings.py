"""Process-wide settings, read once from the environment (``ENRICH_*``, ``DATABASE_URL``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0, 14400.0)


class Settings(BaseSettings):
    """Settings for every entry point: CLI, flows, tests and benchmarks.

    With no ``DATABASE_URL`` the project starts (or reuses) an embedded PostgreSQL in
    ``pgdata_dir``, so a fresh clone works with no set-up.
    """

    model_config = SettingsConfigDict(env_prefix="ENRICH_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "ENRICH_DATABASE_URL"),
        description="PostgreSQL URL; when unset an embedded server is used.",
    )
    data_dir: Path = Field(default=Path(".enrich"), description="Local state: pgdata, caches.")
    pgdata_dir: Path | None = Field(
        default=None, description="Embedded PostgreSQL data directory (default data_dir/pgdata)."
    )
    embedded_database: str = Field(
        default="enrich", description="Database created inside the embedded server."
    )
    config_path: Path = Field(
        default=Path("enrich.yaml"),
        validation_alias=AliasChoices("ENRICH_CONFIG", "ENRICH_CONFIG_PATH"),
        description="YAML file declaring the sources and their pipelines.",
    )
    batch_size: int = Field(default=500, ge=1, le=100_000)
    lease_seconds: float = Field(default=300.0, gt=0)
    retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_RETRY_DELAYS,
        description="Delays in seconds before retry 1..n; the length is the maximum retries.",
    )
    retry_jitter: float = Field(default=0.1, ge=0, le=1)
    index_build_memory: str = Field(
        default="256MB",
        pattern=r"^[0-9]+\s*(kB|MB|GB)$",
        description="maintenance_work_mem for HNSW index builds (the graph should fit in it).",
    )

    search_role: str | None = Field(
        default="enrich_search",
        description="Role searches switch to (SET LOCAL ROLE) so the vector tables' row-level "
        "security applies; empty: connect as a role subject to it instead (docs/search.md).",
    )

    @field_validator("search_role", mode="before")
    @classmethod
    def _no_role(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value

    @property
    def resolved_pgdata_dir(self) -> Path:
        return (self.pgdata_dir or self.data_dir / "pgdata").expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
