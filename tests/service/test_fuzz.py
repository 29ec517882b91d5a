"""The API against its own OpenAPI schema: schemathesis's engine, in process over ASGI, every check.

Every response must conform to the schema (status codes, content types, bodies, headers, Allow on
405), valid requests must be accepted and invalid ones refused, no request may get a 5xx, and
every 4xx carries the one error envelope.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from .helpers import ADMIN_KEY

# A picture's bytes can be refused for what they hold (too small, not an image, too large), which no
# schema can say: those refusals count as answers to schema-valid data, as 2xx do.
CONTENT_REFUSALS = [400, 413, 415]


def _fuzz(make_recognizer: Any, photos: dict[str, bytes], max_examples: int, seed: int) -> tuple[int, Counter[int], list[str]]:
    """(requests sent, their statuses, failed checks) of one schemathesis run over the whole API."""
    from instrec.recognizer import Recognizer
    from instrec.service.app import create_app

    recognizer = make_recognizer(**{"service.admin_keys": ADMIN_KEY})
    recognizer.enroll([photos["astronaut"]], instance_id="astronaut")
    # A collection beside the default one, under the name the schema gives as its example.
    with Recognizer(recognizer.config.with_overrides({"collection": "shoes"}), embedder=recognizer.embedder) as shoes:
        shoes.enroll([photos["rocket"]], instance_id="rocket")
    config = SchemathesisConfig.from_dict(
        {
            "seed": seed,  # the same requests on every run: a failure is one to fix, not a fluke
            # The key is ours: generated keys would be refused (401) before the request is looked at;
            # the checks still send requests without one, and with a wrong one.
            "generation": {"max-examples": max_examples, "with-security-parameters": False},
            "headers": {"X-API-Key": ADMIN_KEY},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 429, *CONTENT_REFUSALS]}
            },
            # schemathesis 4.32 sends a batch with an `images` file part it reports as missing, then
            # expects a refusal; the batch answers each picture in its 200 (here: not an image).
            "operations": [{"include-path": "/v1/recognize/batch", "checks": {"negative_data_rejection": {"enabled": False}}}],
        }
    )
    app = create_app(recognizer.config.with_overrides({"service.auth": True}), recognizer)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"engine error: {event}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorded = event.recorder
        for case_id, interaction in recorded.interactions.items():
            response = interaction.response
            if response is None:
                continue
            statuses[response.status_code] += 1
            if 400 <= response.status_code < 500:
                error = response.json()["error"]  # the envelope, on every 4xx
                assert {"code", "message", "status"} <= set(error) and error["status"] == response.status_code
        for case_id, checks in recorded.checks.items():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    answer = recorded.interactions.get(case_id)
                    body = answer.response.content[:300] if answer and answer.response else b""
                    failures.append(f"{recorded.label}: {check.name}: {failure.title}: {failure.message[:300]} -> {body!r}")
    return sum(statuses.values()), statuses, failures


def test_generated_requests_conform_to_the_schema(make_recognizer, photos):
    sent, statuses, failures = _fuzz(make_recognizer, photos, max_examples=5, seed=1)
    assert not failures, "\n".join(failures)
    assert sent > 200 and not [s for s in statuses if s >= 500], statuses


@pytest.mark.slow
def test_many_generated_requests_conform_to_the_schema(make_recognizer, photos):
    sent, statuses, failures = _fuzz(make_recognizer, photos, max_examples=40, seed=2)
    assert not failures, "\n".join(failures)
    assert sent >= 1000 and not [s for s in statuses if s >= 500], statuses
