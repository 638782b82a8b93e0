"""Webhooks without a web framework: per-account secrets, Standard Webhooks signatures, the SSRF
guard, the retry schedule, and one try of a delivery. The API uses the secret and URL checks; the
webhook worker (worker/webhooks.py) sends. No torch, no FastAPI.

Signatures follow https://www.standardwebhooks.com: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` keyed with the
base64-decoded part of a ``whsec_`` secret); during a secret rotation the header carries one
signature per live secret, space-separated.

The SSRF guard resolves the host itself, refuses loopback, private, link-local, multicast,
reserved and cloud metadata addresses (unless the allowlist admits them; metadata addresses never)
and then connects to the address it checked — the request goes to that IP with the original
``Host`` header and TLS server name — so a DNS answer that changes between check and connect
(DNS rebinding) cannot steer the request anywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import random
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from shared.domain.models import WebhookSecret, utcnow

SECRET_PREFIX = "whsec_"
USER_AGENT = "SoundBox-Webhooks/1"
MAX_RETRY_AFTER = 86400.0  # a receiver's Retry-After is honored up to a day
JITTER = 0.1  # each scheduled delay is stretched or shrunk by up to 10 %

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Cloud instance metadata services: never reachable, allowlist or not.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
    )
)
# Ranges that are not public although Python's ``ipaddress`` may call them global (its tables lag
# the IANA registries): refused like any other non-public address.
NOT_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "fec0::/10",  # IPv6 site-local (deprecated by RFC 3879, still routed inside sites)
        "3fff::/20",  # IPv6 documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/23",  # IETF protocol assignments (Teredo handled through the embedded address)
    )
)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64: the IPv4 address is the last 32 bits


# --- secrets and signatures -----------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def account_secret(session, account_id: uuid.UUID, *, for_update: bool = False) -> WebhookSecret:
    """The account's secret row, created on first use (concurrent first uses agree on one)."""
    from sqlalchemy.dialects.postgresql import insert
    from sqlmodel import col, select

    session.exec(
        insert(WebhookSecret)
        .values(account_id=account_id, secret=new_secret(), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["account_id"])
    )
    q = select(WebhookSecret).where(col(WebhookSecret.account_id) == account_id)
    return session.exec(q.with_for_update() if for_update else q).one()


def rotate_secret(session, account_id: uuid.UUID, grace_seconds: int) -> WebhookSecret:
    """A new secret; the current one keeps signing for ``grace_seconds`` (none when 0)."""
    row = account_secret(session, account_id, for_update=True)
    now = utcnow()
    row.previous_secret = row.secret if grace_seconds > 0 else None
    row.previous_expires_at = now + timedelta(seconds=grace_seconds) if grace_seconds > 0 else None
    row.secret, row.rotated_at = new_secret(), now
    session.add(row)
    session.flush()
    return row


def signing_secrets(row: WebhookSecret, now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its grace period."""
    now = now or utcnow()
    live = [row.secret]
    if row.previous_secret and row.previous_expires_at and row.previous_expires_at > now:
        live.append(row.previous_secret)
    return live


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def encode_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secrets_: list[str], msg_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- the SSRF guard -------------------------------------------------------------------------------


class UnsafeWebhookURL(ValueError):
    """The URL may not receive webhooks; the message says why."""


def check_url_syntax(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials (no network access here)."""
    url = url.strip()
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("must not contain white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    if port == 0:
        raise ValueError("must not use port 0")
    return url


@dataclass(frozen=True)
class Allowlist:
    """SOUNDBOX_WEBHOOK_ALLOWLIST: host names, addresses and CIDR ranges admitted although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        hosts, networks = set(), []
        for raw in text.split(","):
            entry = raw.strip().lower().removeprefix("[").removesuffix("]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def admits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def admits_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in NAT64_PREFIX:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def forbidden_reason(address: IPAddress) -> str | None:
    """Why webhooks may not reach this address, or None when it is a public one."""
    embedded = _embedded_ipv4(address)
    if address in METADATA_ADDRESSES or embedded in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for a in dict.fromkeys((embedded, address)):  # the IPv4 address an IPv6 one carries names it best
        if a.is_loopback:
            return "a loopback address"
        if a.is_link_local:
            return "a link-local address"
        if a.is_multicast:
            return "a multicast address"
        if a.is_unspecified:
            return "the unspecified address"
        if a.is_private:
            return "a private address"
        if isinstance(a, ipaddress.IPv6Address) and a.is_site_local:
            return "a site-local address"
        if a.is_reserved or not a.is_global or any(a.version == n.version and a in n for n in NOT_PUBLIC_NETWORKS):
            return "not a public address"
    return None


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked URL: where the request goes (``addresses``, every one of them allowed) and what it says."""

    url: str
    scheme: str
    host: str  # as in the URL, lower case, without brackets
    port: int
    host_header: str  # the URL's host[:port], as the Host header carries it
    addresses: tuple[str, ...]

    @property
    def host_is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
            return True
        except ValueError:
            return False


def resolve_checked(url: str, allowlist: Allowlist, resolver: Resolver = system_resolver) -> Target:
    """Resolve the URL's host and check every address; raise UnsafeWebhookURL when one may not be reached."""
    try:
        url = check_url_syntax(url)
    except ValueError as exc:
        raise UnsafeWebhookURL(str(exc)) from None
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host.split("%")[0]))]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeWebhookURL(f"host {host!r} does not resolve ({exc})") from None
    if not addresses:
        raise UnsafeWebhookURL(f"host {host!r} does not resolve")
    host_admitted = allowlist.admits_host(host)
    checked = []
    for raw in addresses:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            raise UnsafeWebhookURL(f"host {host!r} resolved to {raw!r}, not an IP address") from None
        reason = forbidden_reason(address)
        metadata = address in METADATA_ADDRESSES or _embedded_ipv4(address) in METADATA_ADDRESSES
        if reason and (metadata or not (host_admitted or allowlist.admits_address(address))):
            where = f"{host} resolves to {address}" if str(address) != host else f"{address} is"
            raise UnsafeWebhookURL(
                f"{where} {reason}; webhooks go to public addresses only"
                + ("" if metadata else " (or ones on SOUNDBOX_WEBHOOK_ALLOWLIST)")
            )
        checked.append(str(address))
    return Target(url=url, scheme=scheme, host=host, port=port, host_header=parts.netloc, addresses=tuple(checked))


# --- retries --------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_delay(
    tries_done: int, schedule: list[float], retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float | None:
    """Seconds until the next try after ``tries_done`` failed ones, or None when the schedule is spent.
    ``schedule[i]`` is the wait before retry i+1, stretched by ±JITTER; a longer Retry-After wins."""
    if tries_done < 1 or tries_done > len(schedule):
        return None
    delay = schedule[tries_done - 1] * (1 - JITTER + 2 * JITTER * rand())
    return max(delay, retry_after or 0.0)


# --- one try --------------------------------------------------------------------------------------


@dataclass
class TryResult:
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    retry_after: float | None = None
    address: str | None = None
    refused: bool = False  # the SSRF guard stopped it: nothing was sent

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _post(
    target: Target, address: str, body: bytes, headers: dict[str, str], timeout: float, transport=None
) -> tuple[int, str | None]:
    import httpx

    pinned = httpx.URL(target.url).copy_with(host=address)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and not target.host_is_address else {}
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=timeout, transport=transport
    ) as client:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST", pinned, content=body, headers={**headers, "host": target.host_header}, extensions=extensions
            )
            response = await client.send(request, stream=True)  # the receiver's body is not read
            await response.aclose()
            return response.status_code, response.headers.get("retry-after")


def send(
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    allowlist: Allowlist,
    timeout: float,
    resolver: Resolver = system_resolver,
    transport=None,
) -> TryResult:
    """One try: check the URL's addresses now (send time), then POST to the first, pinned."""
    try:
        target = resolve_checked(url, allowlist, resolver)
    except UnsafeWebhookURL as exc:
        return TryResult(error=f"refused: {exc}", refused=True)
    address = target.addresses[0]
    started = time.perf_counter()
    try:
        status, retry_after = asyncio.run(_post(target, address, body.encode(), headers, timeout, transport))
    except TimeoutError:
        return TryResult(latency_ms=_ms(started), error=f"timed out after {timeout:g} s", address=address)
    except Exception as exc:  # connection refused, TLS, protocol errors: a failed try, retried
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return TryResult(latency_ms=_ms(started), error=f"timed out after {timeout:g} s", address=address)
        return TryResult(latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:1000], address=address)
    return TryResult(
        status_code=status, latency_ms=_ms(started), retry_after=parse_retry_after(retry_after), address=address
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
