"""Safety rules for http and probe targets: SSRF guard, header and body checks.

A target is refused when its host is, or resolves to, an address that is not
globally routable (loopback, RFC 1918 and other private ranges, unique local
IPv6, link-local including 169.254.169.254, unspecified, multicast, reserved,
shared address space) or a known cloud metadata endpoint, unless the settings'
allow list names the host or a network holding the address. IPv6 forms that
embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by the IPv4
address inside them.

Checks run twice: `TargetPolicy.check_url` before a request (scheme, userinfo,
IP literals in any encoding, metadata names), and `SafeResolver` after DNS,
which hands aiohttp only addresses that passed, so the socket connects to a
checked address and a DNS answer that changes between check and connect
(rebinding) cannot slip through. Redirects are followed by the caller, one
hop at a time, through the same two checks.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from duralane.jobs.errors import TargetRefused
from duralane.settings import Settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_BODY_BYTES = 256 * 1024
MAX_HEADERS = 64
MAX_HEADER_VALUE_CHARS = 8192
MAX_URL_CHARS = 4096

# Names that reach instance metadata on some cloud without any DNS trickery.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.packet.net",
    }
)

# Metadata and platform addresses, named so a refusal says what they are.
# 168.63.129.16 (Azure WireServer) is publicly routable on paper, so only this
# list catches it; the others fall in ranges refused anyway.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "168.63.129.16",
        "100.100.100.200",
        "fd00:ec2::254",
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")

# RFC 7230 token characters, for header names.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII, space and tab, plus obs-text; CR, LF and NUL are what matter.
_FIELD_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

# Headers the client owns: letting a job set them invites request smuggling,
# virtual-host tricks against allow-listed addresses, or a confused proxy.
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    }
)


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be reached by default, or None when it may."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{reason} (embedded in IPv6)" if reason else None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    # Python counts 240.0.0.0/4 as private too; name it by its real class.
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-global address"
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, in any of the common forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Read IPv4 the way inet_aton does: 1 to 4 parts, decimal, octal or hex."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                number = int(part[2:] or "0", 16)
            elif len(part) > 1 and part.startswith("0"):
                number = int(part[1:], 8)
            else:
                number = int(part, 10) if part.isdigit() else -1
        except ValueError:
            return None
        if number < 0:
            return None
        numbers.append(number)
    # The last part fills every byte the earlier parts did not name.
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    value = value << 8 * (4 - len(head)) | last
    return ipaddress.IPv4Address(value)


def parse_host_address(host: str) -> IPAddress | None:
    """The address a URL host names literally, in any encoding, or None."""
    text = host.strip("[]")
    if ":" in text:
        # An IPv6 zone id (fe80::1%eth0) only ever qualifies link-local.
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return parse_ipv4_loose(text)


@dataclass(frozen=True)
class TargetPolicy:
    """The allow list, and the checks every http and probe target goes through."""

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_allowed(cls, allowed: Iterable[str]) -> TargetPolicy:
        """Build a policy from entries that are each a host, an address or a CIDR."""
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        for raw in allowed:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not _is_hostname(entry.rstrip(".")):
                    raise ValueError(
                        f"allowed target {raw!r} is neither a CIDR, an address "
                        "nor a host name"
                    ) from None
                hostnames.add(entry.rstrip("."))
        return cls(networks=tuple(networks), hostnames=frozenset(hostnames))

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        """The policy DURALANE_ALLOWED_TARGETS describes."""
        return cls.from_allowed(settings.allowed_targets)

    def allows_hostname(self, hostname: str) -> bool:
        """Whether the allow list names this host outright."""
        return hostname.lower().rstrip(".") in self.hostnames

    def allows_address(self, address: IPAddress) -> bool:
        """Whether an allow-listed network holds the address (or its IPv4 form)."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            c.version == n.version and c in n for c in candidates for n in self.networks
        )

    def check_address(self, address: IPAddress, hostname: str) -> None:
        """Refuse an address the rules forbid and the allow list does not cover."""
        reason = address_refusal(address)
        if reason is None or self.allows_address(address):
            return
        if self.allows_hostname(hostname):
            return
        raise TargetRefused(
            f"target {hostname!r} refused: {address} is {reason}; add the host or "
            "a CIDR to DURALANE_ALLOWED_TARGETS to allow it"
        )

    def check_url(self, url: str | URL) -> URL:
        """Parse and vet a target URL before any connection; returns it parsed."""
        text = str(url)
        if len(text) > MAX_URL_CHARS:
            raise TargetRefused(
                f"URL refused: {len(text)} characters, the limit is {MAX_URL_CHARS}"
            )
        try:
            parsed = url if isinstance(url, URL) else URL(text)
        except (ValueError, TypeError) as exc:
            raise TargetRefused(f"URL {text!r} refused: unparsable ({exc})") from exc
        scheme = (parsed.scheme or "").lower()
        if scheme not in ALLOWED_SCHEMES:
            raise TargetRefused(
                f"URL {text!r} refused: scheme {scheme or '(none)'!r} is not "
                "http or https"
            )
        raw_host = parsed.raw_host
        if not raw_host:
            raise TargetRefused(f"URL {text!r} refused: it has no host")

        host = unquote(raw_host).lower().rstrip(".")
        address = parse_host_address(host)
        if address is not None:
            self.check_address(address, host)
        elif host in METADATA_HOSTNAMES and not self.allows_hostname(host):
            raise TargetRefused(
                f"target {host!r} refused: it is a cloud metadata host name"
            )

        # Checked after the address, so a refusal names the real destination;
        # each of these is ambiguous enough that no target needs it.
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise TargetRefused(
                f"URL {text!r} refused: credentials in the URL are not accepted; "
                "send an Authorization header instead"
            )
        if "%" in raw_host and not (address and address.version == 6):
            raise TargetRefused(
                f"URL {text!r} refused: percent-encoded host {raw_host!r}"
            )
        if address is not None and address.version == 4 and host != str(address):
            raise TargetRefused(
                f"URL {text!r} refused: write the IPv4 address {address} in "
                f"dotted decimal, not as {host!r}"
            )
        if address is None and not _is_hostname(host):
            raise TargetRefused(f"URL {text!r} refused: {host!r} is not a host name")
        return parsed


def _is_hostname(host: str) -> bool:
    """Whether text is a plain ASCII DNS name (IDNA already applied)."""
    if not host or len(host) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in host.split("."))


class SafeResolver(AbstractResolver):
    """Resolves names, then passes on only the addresses the policy allows."""

    def __init__(
        self,
        policy: TargetPolicy,
        inner: AbstractResolver | None = None,
        job_id: str = "-",
    ) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()
        self._job_id = job_id

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and drop every refused address; refuse if none remain."""
        hostname = host.lower().rstrip(".")
        if hostname in METADATA_HOSTNAMES and not self._policy.allows_hostname(
            hostname
        ):
            raise TargetRefused(
                f"target {hostname!r} refused: it is a cloud metadata host name"
            )
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusals: list[str] = []
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"].split("%", 1)[0])
                self._policy.check_address(address, hostname)
            except TargetRefused as exc:
                refusals.append(exc.message)
                continue
            except ValueError:
                refusals.append(f"resolver returned a non-address {result['host']!r}")
                continue
            kept.append(result)
        if refusals:
            logger.info(
                "job %s: dropped %d of %d addresses for %s: %s",
                self._job_id,
                len(refusals),
                len(results),
                hostname,
                "; ".join(refusals),
            )
        if not kept:
            raise TargetRefused(
                refusals[0]
                if len(refusals) == 1
                else f"target {hostname!r} refused: every address it resolves to "
                f"is refused ({'; '.join(refusals)})"
            )
        return kept

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def safe_connector(policy: TargetPolicy, job_id: str = "-") -> aiohttp.TCPConnector:
    """A connector whose every DNS answer goes through the policy."""
    return aiohttp.TCPConnector(resolver=SafeResolver(policy, job_id=job_id))


def header_problem(name: str, value: str) -> str | None:
    """Why a request header may not be sent, or None when it may."""
    if not name or not _TOKEN.match(name):
        return f"header name {name!r} is not an RFC 7230 token"
    if name.lower() in FORBIDDEN_HEADERS:
        return f"header {name!r} is set by the client and may not be given"
    if "\r" in value or "\n" in value or "\x00" in value:
        return f"header {name!r} has CR, LF or NUL in its value"
    if not _FIELD_VALUE.match(value):
        return f"header {name!r} has control characters in its value"
    if len(value) > MAX_HEADER_VALUE_CHARS:
        return (
            f"header {name!r} value has {len(value)} characters, the limit is "
            f"{MAX_HEADER_VALUE_CHARS}"
        )
    return None


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse header sets that could split a request or override the client."""
    if len(headers) > MAX_HEADERS:
        raise TargetRefused(
            f"{len(headers)} headers refused: the limit is {MAX_HEADERS}"
        )
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise TargetRefused(problem)


def check_body_size(size: int) -> None:
    """Refuse a request body larger than MAX_BODY_BYTES."""
    if size > MAX_BODY_BYTES:
        raise TargetRefused(
            f"request body of {size} bytes refused: the limit is {MAX_BODY_BYTES}"
        )
