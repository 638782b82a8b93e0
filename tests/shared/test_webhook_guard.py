"""Webhook building blocks without the service: signatures checked with the Standard Webhooks
reference implementation, the SSRF guard (at submit and at send time, DNS rebinding included,
against a real receiver process), retry delays, Retry-After, the progress throttle."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.domain.events import Throttle
from shared.domain.webhooks import (
    Allowlist,
    UnsafeWebhookURL,
    encode_body,
    forbidden_reason,
    new_secret,
    next_delay,
    parse_retry_after,
    resolve_checked,
    send,
    sign,
    signed_headers,
)
from tests.conftest import ROOT

PUBLIC = "93.184.215.14"  # a public address (never contacted: these tests resolve with fakes)
NOBODY = Allowlist()


def resolver_for(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


# --- signatures ------------------------------------------------------------------------------------


def test_secret_format():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_signature_verifies_with_the_reference_implementation():
    secret = new_secret()
    body = encode_body(
        {"type": "job.succeeded", "timestamp": "2026-11-26T05:00:00+00:00", "data": {"id": "x", "prompt": "naïve café"}}
    )
    headers = signed_headers([secret], "msg_abc", body)
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"] == "msg_abc"
    assert Webhook(secret).verify(body, headers)["data"]["prompt"] == "naïve café"
    # the reference signer agrees byte for byte
    ts = int(headers["webhook-timestamp"])
    assert Webhook(secret).sign("msg_abc", datetime.fromtimestamp(ts, timezone.utc), body) == sign(
        secret, "msg_abc", ts, body
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("succeeded", "failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_during_rotation_both_secrets_sign():
    old, new = new_secret(), new_secret()
    body = encode_body({"type": "job.failed"})
    headers = signed_headers([new, old], "msg_rot", body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"type": "job.failed"}


# --- the SSRF guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.10", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 for 127.0.0.1
        ("100.64.0.1", "not a public"),
        ("240.0.0.1", "private"),  # reserved ranges count as private
    ],
)
def test_forbidden_addresses_are_refused(address, reason):
    import ipaddress

    assert reason in forbidden_reason(ipaddress.ip_address(address))
    with pytest.raises(UnsafeWebhookURL, match=reason):
        resolve_checked("https://hooks.example.test/in", NOBODY, resolver_for({"hooks.example.test": [address]}))
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeWebhookURL, match=reason):
        resolve_checked(f"http://{literal}:8080/in", NOBODY, resolver_for({}))


def test_public_addresses_pass_and_every_address_is_checked():
    ok = resolve_checked(
        "https://hooks.example.test/in?x=1", NOBODY, resolver_for({"hooks.example.test": [PUBLIC, "2606:4700::1111"]})
    )
    assert ok.addresses == (PUBLIC, "2606:4700::1111") and ok.host_header == "hooks.example.test" and ok.port == 443
    with pytest.raises(UnsafeWebhookURL, match="10.0.0.7"):  # one bad answer among good ones
        resolve_checked(
            "https://hooks.example.test/in", NOBODY, resolver_for({"hooks.example.test": [PUBLIC, "10.0.0.7"]})
        )


def test_localhost_and_numeric_tricks_resolve_to_loopback():
    for url in ("http://localhost:9/x", "http://2130706433/x", "http://0x7f000001/x", "http://127.1/x"):
        with pytest.raises(UnsafeWebhookURL):
            resolve_checked(url, NOBODY)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/x", "http"),
        ("file:///etc/passwd", "http"),
        ("javascript:alert(1)", "http"),
        ("http:///nohost", "host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://exa mple.com/", "white"),
        ("http://example.com:99999/", "(?i)port"),
    ],
)
def test_malformed_urls_are_refused(url, message):
    with pytest.raises(UnsafeWebhookURL, match=message):
        resolve_checked(url, NOBODY, resolver_for({"example.com": [PUBLIC]}))


def test_unresolvable_host_is_refused():
    with pytest.raises(UnsafeWebhookURL, match="does not resolve"):
        resolve_checked("https://nowhere.example.test/", NOBODY, resolver_for({}))


def test_allowlist_admits_hosts_addresses_and_ranges_but_never_metadata():
    allow = Allowlist.parse(" 127.0.0.1, 10.0.0.0/8 ,receiver.internal, [fd00:1::5] ")
    table = {
        "receiver.internal": ["192.168.7.7"],
        "other.internal": ["192.168.7.7"],
        "meta.internal": ["169.254.169.254"],
    }
    resolve = resolver_for(table)
    assert resolve_checked("http://127.0.0.1:8000/h", allow, resolve).addresses == ("127.0.0.1",)
    assert resolve_checked("http://10.20.30.40/h", allow, resolve).addresses == ("10.20.30.40",)
    assert resolve_checked("http://[fd00:1::5]/h", allow, resolve).addresses == ("fd00:1::5",)
    assert resolve_checked("http://Receiver.Internal/h", allow, resolve).addresses == ("192.168.7.7",)
    for url in ("http://127.0.0.2/h", "http://other.internal/h", "http://[::1]/h"):
        with pytest.raises(UnsafeWebhookURL, match="ALLOWLIST"):
            resolve_checked(url, allow, resolve)
    wide = Allowlist.parse("169.254.0.0/16, meta.internal")
    for url in ("http://169.254.169.254/latest/meta-data/", "http://meta.internal/"):
        with pytest.raises(UnsafeWebhookURL, match="metadata"):
            resolve_checked(url, wide, resolve)


def test_send_time_check_stops_dns_rebinding(receiver):
    """The host resolved to a public address when the job was submitted; at send time it resolves
    to 127.0.0.1. The send-time check refuses, and nothing reaches the receiver."""
    rx = receiver()
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = f"http://rebind.example.test:{rx.port}/hook"
    assert resolve_checked(url, NOBODY, rebinding).addresses == (PUBLIC,)  # the submit-time check
    result = send(url, "{}", {"webhook-id": "msg_1"}, allowlist=NOBODY, timeout=5, resolver=rebinding)
    assert result.refused and result.status_code is None and "loopback" in result.error
    assert rx.requests() == []


def test_send_connects_to_the_checked_address_with_the_original_host(receiver):
    rx = receiver({"/pinned": [{"status": 204}]})
    allow = Allowlist.parse("127.0.0.1")
    calls = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    body = encode_body({"type": "job.started"})
    result = send(
        f"http://receiver.example.test:{rx.port}/pinned",
        body,
        {"webhook-id": "msg_2"},
        allowlist=allow,
        timeout=5,
        resolver=resolve,
    )
    assert result.status_code == 204 and result.ok and result.address == "127.0.0.1" and result.error is None
    assert calls == [("receiver.example.test", rx.port)]  # resolved once, by the guard
    got = rx.requests("/pinned")
    assert len(got) == 1 and got[0]["headers"]["host"] == f"receiver.example.test:{rx.port}"
    assert got[0]["body"] == body and got[0]["headers"]["webhook-id"] == "msg_2"


def test_send_reports_connection_failures_and_redirects_are_not_followed(receiver):
    from tests.conftest import free_port

    allow = Allowlist.parse("127.0.0.1")
    dead = send(f"http://127.0.0.1:{free_port()}/x", "{}", {}, allowlist=allow, timeout=5)
    assert dead.status_code is None and dead.error and not dead.refused
    rx = receiver({"/moved": [{"status": 307, "headers": {"Location": "http://169.254.169.254/"}}]})
    moved = send(rx.url("/moved"), "{}", {}, allowlist=allow, timeout=5)
    assert moved.status_code == 307 and not moved.ok and len(rx.requests()) == 1


# --- retries ----------------------------------------------------------------------------------------


def test_retry_delays_follow_the_schedule_with_jitter():
    schedule = [5, 300, 1800]
    assert [next_delay(n, schedule, rand=lambda: 0.5) for n in (1, 2, 3)] == [5, 300, 1800]
    assert next_delay(4, schedule) is None  # schedule spent: give up
    assert next_delay(1, schedule, rand=lambda: 0.0) == pytest.approx(4.5)
    assert next_delay(1, schedule, rand=lambda: 1.0) == pytest.approx(5.5)
    assert next_delay(1, schedule, retry_after=120, rand=lambda: 0.5) == 120  # Retry-After wins when longer
    assert next_delay(2, schedule, retry_after=120, rand=lambda: 0.5) == 300


def test_retry_after_header_forms():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == pytest.approx(90)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("999999999") == 86400
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_progress_throttle_allows_one_event_a_second():
    now = [100.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    seen = []
    for step in range(40):  # a progress update every 0.1 s for 4 s
        now[0] = 100.0 + step * 0.1
        if throttle.ready():
            seen.append(round(now[0], 1))
    assert seen == [100.0, 101.0, 102.0, 103.0]


def test_webhook_worker_module_needs_no_torch():
    code = (
        "import sys, worker.webhooks, soundbox.cli; "
        "print(json.dumps(sorted(m for m in ('torch', 'audiocraft', 'worker.engines') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
