"""The SSRF guard, header and body rules, without and with an allow list."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from jobs_support import LOOPBACK_ALLOWED, NOTHING_ALLOWED

from duralane.jobs.errors import TargetRefused
from duralane.jobs.safety import (
    MAX_BODY_BYTES,
    SafeResolver,
    TargetPolicy,
    address_refusal,
    check_body_size,
    check_headers,
    header_problem,
    parse_ipv4_loose,
)
from duralane.settings import Settings

LOOPBACK_FORMS = [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://example.com@127.0.0.1/",
    "http://%31%32%37.0.0.1/",
    "http://127.0.0.1.:8080/",
    "HTTP://127.0.0.1/",
]


@pytest.mark.parametrize("url", LOOPBACK_FORMS)
def test_every_encoding_of_loopback_is_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://168.63.129.16/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://METADATA.google.internal./", "metadata"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://0xc0.0xa8.0.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "shared"),
    ],
)
def test_private_link_local_and_metadata_targets_are_refused(
    url: str, reason: str
) -> None:
    with pytest.raises(TargetRefused, match=reason):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///nohost",
        "http://exa mple.com/",
        "http://%65xample.com/",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
    ],
)
def test_malformed_or_ambiguous_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "https://93.184.215.14:8443/x?y=1", "http://bücher.de/"],
)
def test_public_targets_pass_the_url_check(url: str) -> None:
    assert NOTHING_ALLOWED.check_url(url).host is not None


def test_loopback_is_accepted_when_allow_listed() -> None:
    LOOPBACK_ALLOWED.check_url("http://127.0.0.1:7071/api")
    LOOPBACK_ALLOWED.check_url("http://[::1]:7071/api")
    LOOPBACK_ALLOWED.check_url("http://[::ffff:127.0.0.1]/")


def test_an_allow_listed_cidr_admits_only_its_own_addresses() -> None:
    policy = TargetPolicy.from_allowed(["10.20.0.0/16"])

    policy.check_url("http://10.20.3.4/")
    with pytest.raises(TargetRefused):
        policy.check_url("http://10.21.0.1/")
    with pytest.raises(TargetRefused):
        policy.check_url("http://127.0.0.1/")


def test_allow_listing_still_refuses_non_canonical_ipv4() -> None:
    with pytest.raises(TargetRefused, match="dotted decimal"):
        LOOPBACK_ALLOWED.check_url("http://2130706433/")


def test_the_policy_reads_the_settings_allow_list() -> None:
    settings = Settings.from_environ({"DURALANE_ALLOWED_TARGETS": "127.0.0.1, db.lan"})
    policy = TargetPolicy.from_settings(settings)

    policy.check_url("http://127.0.0.1/")
    assert policy.allows_hostname("DB.lan.")
    with pytest.raises(TargetRefused):
        policy.check_url("http://127.0.0.2/")


def test_a_malformed_allow_list_entry_fails_loudly() -> None:
    with pytest.raises(ValueError, match="neither a CIDR"):
        TargetPolicy.from_allowed(["not a host!"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0", "0.0.0.0"),
        ("example.com", None),
        ("256.0.0.1", None),
        ("4294967296", None),
        ("1.2.3.4.5", None),
        ("09.0.0.1", None),
    ],
)
def test_loose_ipv4_parsing_matches_inet_aton(text: str, expected: str | None) -> None:
    parsed = parse_ipv4_loose(text)
    assert (str(parsed) if parsed else None) == expected


def test_public_addresses_have_no_refusal() -> None:
    assert address_refusal(ipaddress.ip_address("93.184.215.14")) is None
    assert address_refusal(ipaddress.ip_address("2606:4700::1111")) is None


class StubResolver(AbstractResolver):
    """Answers every name with fixed addresses, as a rebinding DNS server might."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.anyio
async def test_the_resolver_drops_refused_addresses_and_keeps_the_rest() -> None:
    resolver = SafeResolver(
        NOTHING_ALLOWED,
        StubResolver(["10.0.0.5", "93.184.215.14", "::ffff:127.0.0.1"]),
    )

    results = await resolver.resolve("rebind.example", 80)

    assert [r["host"] for r in results] == ["93.184.215.14"]


@pytest.mark.anyio
async def test_the_resolver_refuses_a_name_with_only_refused_addresses() -> None:
    resolver = SafeResolver(NOTHING_ALLOWED, StubResolver(["169.254.169.254"]))

    with pytest.raises(TargetRefused, match="metadata"):
        await resolver.resolve("innocent.example", 80)


@pytest.mark.anyio
async def test_the_resolver_admits_an_allow_listed_host_name() -> None:
    policy = TargetPolicy.from_allowed(["db.internal"])
    resolver = SafeResolver(policy, StubResolver(["10.0.0.5"]))

    results = await resolver.resolve("db.internal", 5432)

    assert [r["host"] for r in results] == ["10.0.0.5"]


@pytest.mark.anyio
async def test_the_resolver_refuses_metadata_names_before_asking_dns() -> None:
    resolver = SafeResolver(NOTHING_ALLOWED, StubResolver(["93.184.215.14"]))

    with pytest.raises(TargetRefused, match="metadata"):
        await resolver.resolve("metadata.google.internal", 80)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Ok", "a\r\nSet-Cookie: x"),
        ("X-Ok", "line\nbreak"),
        ("X-Ok", "nul\x00"),
        ("X-Ok", "bell\x07"),
        ("Bad Header", "v"),
        ("Bad:Header", "v"),
        ("", "v"),
        ("Héader", "v"),
        ("Content-Length", "5"),
        ("X-Big", "v" * 9000),
    ],
)
def test_bad_header_names_and_values_are_refused(name: str, value: str) -> None:
    assert header_problem(name, value) is not None
    with pytest.raises(TargetRefused):
        check_headers({name: value})


def test_ordinary_headers_pass() -> None:
    check_headers({"Authorization": "Bearer abc", "X-Trace_Id.v2": "1\t2"})


def test_too_many_headers_are_refused() -> None:
    with pytest.raises(TargetRefused, match="limit"):
        check_headers({f"X-{i}": "v" for i in range(100)})


def test_bodies_over_256_kb_are_refused() -> None:
    check_body_size(MAX_BODY_BYTES)
    with pytest.raises(TargetRefused, match=str(MAX_BODY_BYTES)):
        check_body_size(MAX_BODY_BYTES + 1)
