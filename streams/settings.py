"""One frozen, typed settings object: defaults, then environment (FACESTREAM_SECTION__KEY)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

MiB = 1024 * 1024


def state_dir() -> Path:
    """Where processes keep local state: claim checks, chDB, Faust's data folder."""
    return Path(os.environ.get("FACESTREAM_STATE", ".facestream")).resolve()


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(Section):
    broker: str = Field("kafka://127.0.0.1:19092", description="Faust broker URL(s)")
    topic_prefix: str = Field("facestream", description="prefix of every topic name")
    partitions: int = Field(4, ge=1, le=256, description="partitions of each stage topic")
    max_message_bytes: int = Field(
        16 * MiB, ge=MiB, description="largest message; bigger images travel as a claim check"
    )
    session_timeout_s: float = Field(10.0, gt=0, le=300)


class ImageSettings(Section):
    max_bytes: int = Field(20 * MiB, ge=1024, description="largest accepted encoded image")
    max_pixels: int = Field(40_000_000, ge=10_000, description="largest accepted width*height")
    claim_check_dir: Path = Field(
        default_factory=lambda: state_dir() / "blobs",
        description="where images over the message limit are stored for the pipeline",
    )


class DetectionSettings(Section):
    score_threshold: float = Field(0.8, ge=0, le=1)
    max_faces: int = Field(16, ge=1, le=1000, description="more faces than this is an error")
    min_face_size: int = Field(20, ge=1, description="faces smaller (pixels) are skipped")
    min_quality: float = Field(
        0.0, ge=0, le=1, description="faces under this quality (processors.quality) are low_quality"
    )


class LivenessSettings(Section):
    threshold: float = Field(0.5, ge=0, le=1, description="probability above which a face is live")
    quality_threshold: float = Field(0.5, ge=0, le=1)
    v1_min_eye_distance: int = Field(
        90,
        ge=80,
        le=10_000,
        description="Liveness V1's least distance between the eyes, px (the reference: ~90, "
        "never under 80)",
    )
    v1_min_padding: int = Field(
        25, ge=0, le=10_000, description="Liveness V1's least face-to-border distance, px"
    )
    v2_min_padding: int = Field(
        10, ge=0, le=10_000, description="Liveness V2's least face-to-border distance, px"
    )


class AttributesSettings(Section):
    estimate: bool = Field(
        False,
        description="the pipeline estimates each face's basic attributes (age, gender, "
        "expression; about 5 ms a face); an image may ask otherwise (estimate_basic_attributes)",
    )


class LicenseSettings(Section):
    # Integer ranges rather than Literal: environment values arrive as strings.
    liveness: int = Field(
        2, ge=0, le=2, description="licensed liveness: 0 none, 1 Liveness V1, 2 Liveness V2"
    )


class AdditionalServicesUsage(Section):
    liveness: bool = Field(
        False, description="the Liveness V1 service is enabled (licence value 1 needs it on)"
    )


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    max_body_bytes: int = Field(
        25 * MiB, ge=1024, description="larger request bodies are refused with 413"
    )
    wait_timeout_s: float = Field(30.0, gt=0, le=300, description="default for wait=1")
    admin_token: str | None = Field(
        None,
        min_length=16,
        description="the administrator's token (Authorization: Bearer) for the routes that "
        "span accounts: tasks, settings, counts in health; unset = those routes answer 403",
    )
    task_heartbeat_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="a running task's state is written to the tasks topic this often; one not "
        "written for 5 times as long lost its process and shows as interrupted",
    )
    ws_queue_size: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="events waiting to be sent to one WebSocket subscriber; a subscriber that "
        "falls this far behind is told (subscriber_too_slow) and disconnected",
    )
    ws_send_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a WebSocket send blocked this long drops its subscriber"
    )


class MatchSettings(Section):
    threshold_v1: float = Field(
        0.363, ge=-1, le=1, description="lowest cosine reported for SFace (its published 0.363)"
    )
    threshold_v2: float = Field(
        0.91,
        ge=-1,
        le=1,
        description="lowest cosine reported for dlib ResNet: its distance 0.6 on the "
        "L2-normalised descriptors",
    )
    limit: int = Field(3, ge=1, le=100, description="matches kept per face")

    def threshold(self, version: int) -> float:
        """Each descriptor version has its own similarity scale."""
        value: float = getattr(self, f"threshold_v{version}")
        return value


class DescriptorSettings(Section):
    default_face_descriptor_version: int = Field(
        1, ge=1, le=2, description="1 = SFace 2021dec, 2 = dlib ResNet v1"
    )
    also_extract: list[Annotated[int, Field(ge=1, le=2)]] = Field(
        default_factory=list,
        description="versions extracted beside the default; those that known faces lacking "
        "the default still have are extracted anyway, so they stay matchable during a switch",
    )


class StorageSettings(Section):
    clickhouse_url: str | None = Field(
        None, description="clickhouse://host:port/db; unset = embedded chDB under chdb_path"
    )
    chdb_path: Path = Field(default_factory=lambda: state_dir() / "chdb")
    database: str = Field("facestream", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    batch_size: int = Field(500, ge=1, le=100_000)
    flush_interval_s: float = Field(
        0.1,
        gt=0,
        le=60,
        description="a store stage writes what it has every this often (fewer, larger inserts "
        "when longer; each row waits for the next turn)",
    )
    retry_initial_s: float = Field(
        0.5, gt=0, le=60, description="first wait before retrying a flush ClickHouse did not take"
    )
    retry_max_s: float = Field(
        10.0, gt=0, le=600, description="the wait doubles up to this; retries never stop"
    )
    flush_timeout_s: float = Field(
        180.0,
        ge=10,
        le=3600,
        description="a flush running longer is a wedged client: the worker exits (70) to be "
        "restarted, its batch not committed",
    )


class InfluxMonitoringSettings(Section):
    send_data_for_monitoring: bool = False
    use_ssl: bool = False
    flushing_period: float = Field(1.0, gt=0, le=3600, description="seconds between flushes")
    host: str = "127.0.0.1"
    port: int = Field(18086, ge=1, le=65535)
    database: str = Field("facestream", description="InfluxDB 1 database")
    organization: str | None = Field(None, description="InfluxDB 2 only")
    token: str | None = Field(None, description="InfluxDB 2 only")
    bucket: str | None = Field(None, description="InfluxDB 2 only")
    version: int | None = Field(None, ge=1, le=2, description="unset = detected from the server")


class WorkerSettings(Section):
    batch_size: int = Field(16, ge=1, le=1024, description="messages a stage takes at once")
    batch_wait_s: float = Field(
        0.01,
        gt=0,
        le=10,
        description="a stage takes what has come every this often, up to batch_size at once "
        "(each message waits for the next turn)",
    )
    models_dir: Path = Field(
        default_factory=lambda: Path(
            os.environ.get("FACESTREAM_MODELS_DIR", Path.home() / ".cache/facestream/models")
        )
    )
    web_port: int = Field(16066, ge=1, le=65535, description="Faust's own web port")
    worker_count: int = Field(
        1,
        ge=1,
        le=64,
        description="worker processes `facestream worker` runs (WORKER_COUNT); they share "
        "the topics' partitions through one consumer group",
    )


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="applied at once, without a restart"
    )


class Settings(BaseSettings):
    """Sources, the later winning: defaults, the file named by FACESTREAM_CONFIG_FILE (YAML or
    JSON, one mapping per section), the environment (FACESTREAM_SECTION__KEY), then the values
    given to the constructor, which is how the config topic's sections come in."""

    model_config = SettingsConfigDict(
        env_prefix="FACESTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    image: ImageSettings = ImageSettings()
    detection: DetectionSettings = DetectionSettings()
    liveness: LivenessSettings = LivenessSettings()
    attributes: AttributesSettings = AttributesSettings()
    match: MatchSettings = MatchSettings()
    descriptor: DescriptorSettings = DescriptorSettings()
    storage: StorageSettings = StorageSettings()
    license: LicenseSettings = LicenseSettings()
    additional_services_usage: AdditionalServicesUsage = AdditionalServicesUsage()
    api: ApiSettings = ApiSettings()
    influx_monitoring: InfluxMonitoringSettings = InfluxMonitoringSettings()
    worker: WorkerSettings = WorkerSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return init_settings, env_settings
        if not Path(path).is_file():
            raise FileNotFoundError(f"{CONFIG_FILE_ENV}={path}: no such file")
        file: PydanticBaseSettingsSource = (
            JsonConfigSettingsSource(settings_cls, json_file=path)
            if path.endswith(".json")
            else YamlConfigSettingsSource(settings_cls, yaml_file=path)
        )
        return init_settings, env_settings, file


CONFIG_FILE_ENV = "FACESTREAM_CONFIG_FILE"
SECTIONS = tuple(Settings.model_fields)
# Sections a running process cannot take over live: it restarts (gracefully) to apply them.
RESTART_SECTIONS = frozenset({"kafka", "storage", "descriptor", "worker", "api"})
SECRETS = {
    "influx_monitoring": ("token",),
    "storage": ("clickhouse_url",),
    "api": ("admin_token",),
}


@cache
def get_settings() -> Settings:
    return Settings()


class LiveSettings:
    """The settings a running process uses now; the config follower swaps them, and listeners
    (log level, detector threshold, monitoring target) apply what changed."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings
        self._listeners: list[Callable[[Settings, Settings], None]] = []

    def subscribe(self, listener: Callable[[Settings, Settings], None]) -> None:
        self._listeners.append(listener)

    def update(self, new: Settings) -> None:
        old, self.current = self.current, new
        for listener in self._listeners:
            listener(old, new)
