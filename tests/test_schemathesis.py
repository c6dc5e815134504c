"""Schemathesis (pinned in pyproject) against the app's own OpenAPI document, on PostgreSQL and
Redis: for every operation, requests that fit the schema and requests that break it, and no
5xx, no undocumented status, no answer outside its documented schema. Bounded (a few examples per
operation and mode) so the suite stays fast.

Schemathesis's pytest plugin (`from_fixture`) does not run under this pytest, so the strategies
are driven through Hypothesis directly, as its Python API documents."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import client_for, make_world
from tests.fake_stripe import FakeStripe

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12


@pytest.fixture
def world(tmp_path, pg_database_url, redis_cache):  # the accounts tests' world, on the production backends
    made = make_world(pg_database_url, redis_cache, tmp_path)
    yield made
    made["engine"].dispose()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_no_undocumented_answer(world, mode: GenerationMode) -> None:
    # billing on (a loopback Stripe), so that its routes answer rather than 503 billing_disabled
    with FakeStripe() as stripe:
        client = client_for(world, QUOTA_ANONYMOUS="100000", STRIPE_API_KEY=stripe.api_key, STRIPE_API_BASE=stripe.base,
                         STRIPE_WEBHOOK_SECRET="whsec_x", STRIPE_PRICE_PREMIUM="price_a", STRIPE_PRICE_PRO="price_b")
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 13, [op.label for op in operations]
        tried = []
        for operation in operations:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                      database=None)
            def run(case) -> None:  # called at once, in this iteration
                case.call_and_validate(checks=CHECKS)
                tried.append(operation.label)  # noqa: B023

            try:
                run()
            except Unsatisfiable:  # nothing in this operation's schema can be broken (e.g. no parameters)
                assert mode == GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # name the operation that failed
                raise AssertionError(f"{operation.label} ({mode}): {exc}") from exc
    assert len(set(tried)) >= (13 if mode == GenerationMode.POSITIVE else 6), sorted(set(tried))
