"""Which Liveness version a resource may use under the licence: LUNA PLATFORM's tables.

`/liveness`: licence 1 with the V1 service option on is V1, licence 2 with it off is V2. Every
other resource with liveness estimation (`/sdk`, and images sent into the pipeline, over HTTP or
Kafka) only licence 2 with the option off: V2. The reference wants the V1 service's option
disabled there too, so licence 2 with it on is refused everywhere. A refusal is a
ProcessingError whose code names the rule and whose message says what would enable one.
"""

from __future__ import annotations

from typing import Literal

from processors.errors import ProcessingError
from processors.liveness_requirements import Version
from streams.settings import Settings

Resource = Literal["liveness", "sdk", "images"]
_SHOWN = {"liveness": "/liveness", "sdk": "/sdk", "images": "liveness in the pipeline"}


def liveness_version(resource: Resource, license_value: int, liveness_option: bool) -> Version:
    """The Liveness version serving `resource`, or ProcessingError (answered 403)."""
    setting = f"license.liveness={license_value}"
    option = f"additional_services_usage.liveness={str(liveness_option).lower()}"
    enable = f"{_SHOWN[resource]} needs " + (
        "license.liveness=1 with additional_services_usage.liveness=true (Liveness V1), "
        "or license.liveness=2 with it false (Liveness V2)"
        if resource == "liveness"
        else "license.liveness=2 with additional_services_usage.liveness=false (Liveness V2)"
    )
    if license_value == 0:
        raise ProcessingError(
            f"the licence has no liveness ({setting}); {enable}", code="liveness_not_licensed"
        )
    if license_value == 1 and resource != "liveness":
        raise ProcessingError(
            f"the licence is Liveness V1 ({setting}), which serves /liveness only; {enable}",
            code=f"liveness_v1_not_on_{resource}",
        )
    if license_value == 1 and not liveness_option:
        raise ProcessingError(
            f"the licence is Liveness V1 ({setting}) but its service is off ({option}); {enable}",
            code="liveness_v1_disabled",
        )
    if license_value == 2 and liveness_option:
        raise ProcessingError(
            f"the licence is Liveness V2 ({setting}), which needs the Liveness V1 service off, "
            f"but {option}; {enable}",
            code="liveness_v1_option_conflict",
        )
    return "v1" if license_value == 1 else "v2"


def licensed(resource: Resource, settings: Settings) -> Version:
    """liveness_version under `settings`."""
    return liveness_version(
        resource, settings.license.liveness, settings.additional_services_usage.liveness
    )


def pipeline_estimates(asked: bool | None, settings: Settings) -> bool:
    """Whether the pipeline estimates an image's liveness: as asked (None: whenever the licence
    allows it); asked for under a licence that forbids it, the licence's refusal."""
    if asked is False:
        return False
    try:
        licensed("images", settings)
    except ProcessingError:
        if asked:
            raise
        return False
    return True
