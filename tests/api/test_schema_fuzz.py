"""Schemathesis over the OpenAPI document against a real API process: a bounded number of
generated requests per operation (valid and invalid ones), and none may get a server error."""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance

from tests.conftest import make_key

EXAMPLES = 4  # per operation: bounded, the run takes about a minute
SKIP = re.compile(r"/events$")  # server-sent events stream until the job ends


def test_no_server_errors(api_url, database):
    key = make_key("schemathesis", "creator", admin=True)
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if SKIP.search(operation.path):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:
            nonlocal ran
            if case.headers:
                case.headers.pop("Prefer", None)  # wait=N would hold each example up to a minute
            response = case.call(headers={"Authorization": f"Bearer {key}"}, timeout=30)
            ran += 1
            case.validate_response(
                response, checks=[not_a_server_error, status_code_conformance, content_type_conformance]
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    _cancel_left_over_jobs(key)  # generated submits must not queue ahead of later tests' jobs
    assert ran > 0
    assert not failures, "\n".join(failures)


def _cancel_left_over_jobs(key: str) -> None:
    from sqlalchemy import text

    from shared.domain.accounts import account_for_key
    from shared.infra.db import session_scope

    with session_scope() as s:
        account = account_for_key(s, key)
        assert account is not None
        s.exec(
            text(
                "UPDATE jobs SET status = 'canceled', error = 'test cleanup' "  # type: ignore[call-overload]
                "WHERE account_id = :a AND status = 'queued'"
            ).bindparams(a=account.id)
        )
