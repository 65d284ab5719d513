"""A deployment's topics on the real broker: made, then deleted with nothing else touched."""

from __future__ import annotations

import asyncio
import os
import uuid
from unittest import mock

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka import topics
from streams.settings import Settings

pytestmark = pytest.mark.integration


async def names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_deployments_topics_are_deleted_and_only_they(stack_env: dict[str, str]) -> None:
    run = uuid.uuid4().hex[:8]
    deployments = []
    for prefix in (f"gone{run}", f"gone{run}x"):  # the second starts like the first
        with mock.patch.dict(os.environ, stack_env | {"FACESTREAM_KAFKA__TOPIC_PREFIX": prefix}):
            deployments.append(Settings())
    gone, kept = deployments
    for settings in deployments:
        await topics.ensure_topics(settings.kafka)
    faust_own = f"gone{run}-facestream-__assignor-__leader"  # as Faust names its own topics
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers(gone.kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(faust_own, 1, 1)])
    finally:
        await admin.close()
    for _ in range(100):  # a topic made a moment ago may take a little while to be listed
        if faust_own in await names(gone):
            break
        await asyncio.sleep(0.1)

    deleted = await topics.delete_deployment_topics(gone.kafka)

    expected = {topics.topic_name(gone.kafka, spec) for spec in topics.ALL} | {faust_own}
    assert set(deleted) == expected
    left = await names(gone)
    assert not left & expected
    assert {topics.topic_name(kept.kafka, spec) for spec in topics.ALL} <= left
    assert await topics.delete_deployment_topics(kept.kafka)
