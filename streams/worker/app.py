"""The Faust app, sized for image payloads."""

from __future__ import annotations

import os
import socket
from typing import Any

import faust
from faust.types import AgentT
from mode.supervisors import CrashingSupervisor

from streams.control.supervisor import SLOT_ENV
from streams.settings import Settings, state_dir

# Stage agents hold a batch in memory at a time; a deep buffer only multiplies image bytes.
STREAM_BUFFER = 64


def static_member_id(settings: Settings) -> str | None:
    """A supervised process is a static member of its group, named by its deployment, host and
    slot: restarted in the same slot, it gets its partitions back at once, without waiting for
    its predecessor's session to expire or moving any other member's partitions. A process
    started by hand has no slot, and joins as a dynamic member."""
    slot = os.environ.get(SLOT_ENV)
    if slot is None:
        return None
    return f"{settings.kafka.topic_prefix}-{socket.gethostname()}-{slot}"


class App(faust.App):
    async def _on_agent_error(self, agent: AgentT[Any], exc: BaseException) -> None:
        """Faust commits the consumer's offsets here and restarts the agent, while take_events
        acks the batch the agent died in as it is closed: that batch would be lost. The app
        crashes instead, and the worker exits before anything is committed (crash.py)."""
        crashed = AgentCrashed(f"agent {agent.name} failed")
        crashed.__cause__ = exc
        await self.crash(crashed)


class AgentCrashed(Exception):
    """Names the agent; its cause is what the agent raised."""


def create_app(settings: Settings) -> faust.App:
    """One consumer group per deployment: the group is named after the topic prefix."""
    kafka = settings.kafka
    faust_dir = state_dir() / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last folder
    session = kafka.session_timeout_s
    return App(
        kafka.topic_prefix,
        broker=kafka.broker,
        store="memory://",
        datadir=str(faust_dir / "{conf.name}"),  # not the working directory
        autodiscover=False,
        agent_supervisor=CrashingSupervisor,  # an agent that dies crashes the worker
        web_enabled=False,
        web_port=settings.worker.web_port,
        topic_partitions=kafka.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=kafka.max_message_bytes,
        consumer_max_fetch_size=kafka.max_message_bytes,
        stream_buffer_maxsize=STREAM_BUFFER,
        broker_session_timeout=session,
        consumer_group_instance_id=static_member_id(settings),
        broker_heartbeat_interval=min(3.0, session / 3),
        broker_request_timeout=max(40.0, session + 5),
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        loghandlers=[],
    )
