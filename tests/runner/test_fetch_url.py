"""fetch_url against a local aiohttp server: what it refuses before a byte is sent, what it
refuses after DNS or on a redirect, and how it turns pages into text. DNS is a fake table."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from runner.builtins.fetch import (
    FetchFailed,
    FetchLimits,
    FetchRefused,
    fetch_url,
    public_address,
)

PAGE = """<!doctype html><html><head><title>Release &amp; notes</title>
<style>body { color: red }</style><script>var secret = "do-not-show";</script></head>
<body><nav><a href="/home">Home</a></nav><h1>Version 2</h1>
<p>It is  <b>faster</b>
and caf&eacute;-proof. See <a href="https://example.org/docs">the docs</a>.</p>
<ul><li>one</li><li>two</li></ul><noscript>enable js</noscript><svg><title>icon</title></svg>
<script>alert("nope")</script></body></html>"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeResolver(AbstractResolver):
    """Answers from a table, so no test depends on real DNS."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = names or {}
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


@dataclass
class Site:
    server: TestServer
    seen: list[str]
    agents: list[str]

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    seen: list[str] = []
    agents: list[str] = []
    release = asyncio.Event()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request.path_qs)
        agents.append(request.headers.get("User-Agent", ""))
        return await handler(request)

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            for _ in range(64):
                await response.write(b"x" * 16_384)
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["u"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop/{int(request.match_info['n']) + 1}")

    def fixed(body: bytes | str, content_type: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            data = body.encode() if isinstance(body, str) else body
            return web.Response(body=data, headers={"Content-Type": content_type})

        return handler

    app = web.Application(middlewares=[record])
    app.router.add_get("/", fixed(PAGE, "text/html; charset=utf-8"))
    app.router.add_get("/plain", fixed("plain words", "text/plain"))
    app.router.add_get("/json", fixed('{"b": [1, 2], "a": "é"}', "application/json"))
    app.router.add_get(
        "/latin1", fixed("Café crème".encode("latin-1"), "text/plain; charset=latin-1")
    )
    app.router.add_get("/pdf", fixed(b"%PDF-1.4 ...", "application/pdf"))
    app.router.add_get("/big", big)
    app.router.add_get("/hang", hang)
    app.router.add_get("/to", redirect_to)
    app.router.add_get("/loop/{n}", loop)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(server, seen, agents)
    finally:
        release.set()
        await server.close()


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[::ffff:7f00:1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://10.1.2.3/",
        "http://100.64.0.1/",
        "http://[fe80::1%25lo]:{port}/",
        "http://[fd00::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://2130706433:{port}/",
        "http://127.1:{port}/",
        "http://0177.0.0.1:{port}/",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
        "http:///no-host",
        "javascript:alert(1)",
        "example.com/no-scheme",
    ],
)
async def test_refused_before_connecting(site: Site, template: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(FetchRefused) as refused:
        await fetch_url(template.format(port=site.port), resolver=resolver)
    assert site.seen == []
    assert resolver.asked == []
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.8"], ["93.184.216.34", "10.0.0.9"], ["2606:4700::1", "fd12:3456::1"], ["127.0.0.1"]],
)
async def test_names_resolving_to_private_addresses_are_refused(addresses: list[str]) -> None:
    resolver = FakeResolver({"intranet.example": addresses})
    with pytest.raises(FetchRefused, match="intranet.example resolves to a private"):
        await fetch_url("https://intranet.example/wiki", resolver=resolver)
    assert resolver.asked == ["intranet.example"]


async def test_unknown_name_fails_briefly() -> None:
    with pytest.raises(FetchFailed, match="could not resolve the host name nowhere.example"):
        await fetch_url("http://nowhere.example/", resolver=FakeResolver())


def _only_local_loopback(ip: IPv4Address | IPv6Address) -> bool:
    return ip == IPv4Address("127.0.0.1") or public_address(ip)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://evil.example:{port}/plain",
        "http://127.0.0.2:{port}/plain",
        "http://[::1]:{port}/plain",
        "file:///etc/passwd",
    ],
)
async def test_redirect_to_private_address_is_refused(site: Site, target: str) -> None:
    resolver = FakeResolver({"site.example": ["127.0.0.1"], "evil.example": ["192.168.1.1"]})
    start = site.url("/to?u=" + quote(target.format(port=site.port), safe=""), "site.example")
    with pytest.raises(FetchRefused):
        await fetch_url(start, resolver=resolver, address_allowed=_only_local_loopback)
    assert len(site.seen) == 1 and site.seen[0].startswith("/to?u=")


async def test_redirects_are_followed_through_the_guarded_resolver(site: Site) -> None:
    resolver = FakeResolver({"site.example": ["127.0.0.1"]})
    start = site.url("/to?u=" + quote("/plain", safe=""), "site.example")
    page = await fetch_url(start, resolver=resolver, address_allowed=_only_local_loopback)
    assert page.url == site.url("/plain", "site.example")
    assert (page.status, page.content_type, page.text) == (200, "text/plain", "plain words")
    assert site.seen[1] == "/plain"
    assert all("autogen-slack fetch_url" in agent for agent in site.agents)


async def test_too_many_redirects(site: Site) -> None:
    limits = FetchLimits(max_redirects=3)
    with pytest.raises(FetchFailed, match="redirected more than 3 times"):
        await fetch_url(site.url("/loop/0"), allow_private=True, limits=limits)
    assert site.seen == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


async def test_html_becomes_readable_text(site: Site) -> None:
    page = await fetch_url(site.url("/"), allow_private=True)
    lines = page.text.splitlines()
    assert lines[0] == "Release & notes"
    assert "Version 2" in lines
    assert "It is faster and café-proof. See the docs (https://example.org/docs)." in lines
    assert "- one" in lines and "- two" in lines
    assert "Home" in lines and "/home" not in page.text
    for hidden in ("do-not-show", "nope", "color", "enable js", "icon"):
        assert hidden not in page.text
    assert page.content_type == "text/html" and not page.truncated
    assert page.size == len(PAGE.encode())


async def test_json_is_pretty_printed(site: Site) -> None:
    page = await fetch_url(site.url("/json"), allow_private=True)
    assert page.text == json.dumps({"b": [1, 2], "a": "é"}, indent=2, ensure_ascii=False)


async def test_charset_from_the_header(site: Site) -> None:
    page = await fetch_url(site.url("/latin1"), allow_private=True)
    assert page.text == "Café crème"


async def test_large_body_is_truncated(site: Site) -> None:
    limits = FetchLimits(max_bytes=100_000, max_chars=1_000_000)
    page = await fetch_url(site.url("/big"), allow_private=True, limits=limits)
    assert page.truncated
    assert page.size <= limits.max_bytes + 65_536
    assert page.text == "x" * page.size


async def test_text_is_clipped_to_max_chars(site: Site) -> None:
    page = await fetch_url(site.url("/plain"), allow_private=True, limits=FetchLimits(max_chars=5))
    assert (page.text, page.truncated) == ("plain", True)


async def test_http_error_status(site: Site) -> None:
    with pytest.raises(FetchFailed) as failed:
        await fetch_url(site.url("/missing"), allow_private=True)
    assert failed.value.status == 404
    assert str(failed.value) == f"{site.url('/missing')} answered HTTP 404"


async def test_unsupported_content_type(site: Site) -> None:
    with pytest.raises(FetchFailed, match="unsupported content type application/pdf"):
        await fetch_url(site.url("/pdf"), allow_private=True)


async def test_server_that_never_answers_times_out(site: Site) -> None:
    with pytest.raises(FetchFailed, match=r"did not answer within 0\.3 s"):
        await fetch_url(site.url("/hang"), allow_private=True, limits=FetchLimits(timeout_s=0.3))
    assert site.seen == ["/hang"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700::1", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:93.184.216.34", True),
        ("2002:5db8:d822::1", True),
        ("64:ff9b::5db8:d822", True),
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("2002:a9fe:a9fe::1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b:1::a00:1", False),
        ("2001::1", False),
    ],
)
def test_public_address(address: str, public: bool) -> None:
    assert public_address(ip_address(address)) is public
