"""`fetch_url`: fetch one public web page for an agent and return its readable text.

Agents pick the URL, so this is a server-side request forgery door unless every address
is checked: literal IPs before connecting, names after resolution, by the resolver that
the connection then uses (no second lookup for DNS rebinding), on every redirect hop."""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

USER_AGENT = "Mozilla/5.0 (compatible; autogen-slack fetch_url/0.1)"
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
}
_CHUNK = 65_536
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML = frozenset({"text/html", "application/xhtml+xml"})
_TEXT = frozenset(
    {"text/plain", "text/markdown", "text/csv", "application/json", "application/xml", "text/xml"}
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 2_000_000
    timeout_s: float = 20.0
    max_redirects: int = 5
    max_chars: int = 20_000


class FetchRefused(Exception):
    """The URL or a redirect target is not allowed; the message is safe to show anyone."""


class FetchFailed(Exception):
    """The page could not be fetched; the message is safe to show anyone."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content_type: str
    text: str
    size: int
    truncated: bool


def public_address(ip: IPAddress) -> bool:
    """True only for addresses on the public internet. IPv6 forms that carry an IPv4
    address (mapped, 6to4, NAT64) are judged by the IPv4 address inside."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return public_address(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return public_address(embedded)
        if ip in _NAT64_LOCAL or ip.is_site_local or ip.teredo is not None:
            return False
    special = (ip.is_private, ip.is_loopback, ip.is_link_local, ip.is_multicast, ip.is_reserved)
    return ip.is_global and not (any(special) or ip.is_unspecified)


class _GuardedResolver(AbstractResolver):
    """Refuses a name if any address it resolves to is not allowed. aiohttp connects to
    exactly the addresses returned here, so what was checked is what is dialled."""

    def __init__(self, inner: AbstractResolver, allowed: AddressPolicy) -> None:
        self._inner, self._allowed = inner, allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                ip = ipaddress.ip_address(result["host"])
            except ValueError:
                raise FetchRefused(f"{host} did not resolve to an IP address") from None
            if not self._allowed(ip):
                raise FetchRefused(f"{host} resolves to a private or reserved address")
        return results

    async def close(self) -> None:
        """The inner resolver belongs to whoever made it; `fetch_url` closes its own."""


def _show(url: URL | str) -> str:
    text = str(url)
    return text if len(text) <= 120 else text[:117] + "..."


def _checked_url(raw: str, allowed: AddressPolicy, base: URL | None = None) -> URL:
    """Parse and vet a URL; names are vetted later, by the resolver."""
    try:
        url = base.join(URL(raw)) if base is not None else URL(raw)
    except (ValueError, TypeError):
        raise FetchRefused(f"{_show(raw)} is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise FetchRefused("fetch_url only visits absolute http:// and https:// URLs")
    if url.user is not None or url.password is not None:
        raise FetchRefused("fetch_url does not visit URLs that carry a user name or password")
    host = url.raw_host
    if not host:
        raise FetchRefused(f"{_show(url)} has no host name")
    # aiohttp skips the resolver for anything that looks numeric or has a colon.
    if ":" in host or host.replace(".", "").isdigit():
        try:
            ip = ipaddress.ip_address(url.host or "")
        except ValueError:
            raise FetchRefused(f"{host} is not a plain IP address or host name") from None
        if not allowed(ip):
            raise FetchRefused(f"{_show(url)} points at a private or reserved address")
    return url.with_fragment(None)


def _translated(exc: aiohttp.ClientError, url: URL) -> Exception:
    """aiohttp may wrap the resolver's refusal; dig it out, else say briefly what failed."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, FetchRefused):
            return cause
        cause = getattr(cause, "os_error", None) or cause.__cause__
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchRefused(f"{_show(url)} is not a valid URL")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return FetchFailed(f"could not resolve the host name {url.host}")
        return FetchFailed(f"could not connect to {url.host}")
    return FetchFailed(f"fetching {_show(url)} failed ({type(exc).__name__})")


async def fetch_url(
    url: str,
    *,
    limits: FetchLimits = FetchLimits(),
    allow_private: bool = False,
    resolver: AbstractResolver | None = None,
    address_allowed: AddressPolicy | None = None,
) -> Fetched:
    """GET `url` (following up to `limits.max_redirects` redirects) and return its text.

    Raises FetchRefused for URLs or redirect targets that are not allowed, FetchFailed for
    everything else that goes wrong; both carry a short message fit for an agent."""
    allowed: AddressPolicy = (
        (lambda _ip: True) if allow_private else (address_allowed or public_address)
    )
    current = _checked_url(url, allowed)
    inner = resolver or DefaultResolver()
    try:
        async with asyncio.timeout(limits.timeout_s):
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=_GuardedResolver(inner, allowed), use_dns_cache=False
                ),
                headers=_HEADERS,
                timeout=aiohttp.ClientTimeout(),
                trust_env=False,
            ) as session:
                for _ in range(limits.max_redirects + 1):
                    async with session.get(current, allow_redirects=False) as response:
                        location = response.headers.get("Location")
                        if response.status in _REDIRECTS and location:
                            current = _checked_url(location, allowed, base=current)
                            continue
                        return await _page(response, current, limits)
                raise FetchFailed(f"{_show(url)} redirected more than {limits.max_redirects} times")
    except TimeoutError:
        raise FetchFailed(f"{_show(url)} did not answer within {limits.timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise _translated(exc, current) from None
    finally:
        if resolver is None:
            await inner.close()


async def _page(response: aiohttp.ClientResponse, url: URL, limits: FetchLimits) -> Fetched:
    if response.status >= 400:
        raise FetchFailed(f"{_show(url)} answered HTTP {response.status}", status=response.status)
    kind = response.content_type
    if not (kind in _HTML or kind in _TEXT or kind.endswith(("+json", "+xml"))):
        raise FetchFailed(
            f"{_show(url)} has unsupported content type {kind[:60]}", status=response.status
        )
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limits.max_bytes:
            break
    cut = len(body) > limits.max_bytes
    del body[limits.max_bytes :]
    # Parsing a couple of megabytes of HTML is CPU work: keep it off the event loop.
    text = await asyncio.to_thread(_readable, bytes(body), kind, response.charset)
    clipped = len(text) > limits.max_chars
    text = text[: limits.max_chars]
    return Fetched(str(url), response.status, kind, text, len(body), cut or clipped)


def _readable(body: bytes, kind: str, charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    text = body.decode(codec, errors="replace")
    if kind in _HTML:
        return html_to_text(text)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


_SKIPPED = frozenset({"script", "style", "noscript", "svg", "template", "head"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "blockquote", "ul", "ol", "dl"}
)
_LINES = frozenset({
    "div", "section", "article", "header", "footer", "nav", "main", "aside", "form", "tr",
    "hr", "dt", "dd", "figure", "figcaption", "details", "summary", "address", "fieldset",
})  # fmt: skip
_BLOCKS = {t: "\n" for t in _LINES} | {t: "\n\n" for t in _PARAGRAPHS}
_OPENING = _BLOCKS | {"br": "\n", "li": "\n- ", "td": " ", "th": " "}


class _Readable(HTMLParser):
    """Collects visible text with block structure kept as line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping: list[str] = []
        self._title_state = 0  # 0 before the title, 1 inside it, 2 after it
        self._pre = 0
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # a missing </head> must not hide the page
            self._skipping = [t for t in self._skipping if t != "head"]
        if tag == "title" and self._title_state == 0 and set(self._skipping) <= {"head"}:
            self._title_state = 1
        elif tag in _SKIPPED:
            self._skipping.append(tag)
        elif not self._skipping:
            if tag == "a":
                href = (dict(attrs).get("href") or "").strip()
                absolute = href if href.startswith(("http://", "https://")) else None
                self._links.append((absolute, len(self.parts)))
            self.parts.append(_OPENING.get(tag, ""))
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title_state == 1:
            self._title_state = 2
        elif tag in _SKIPPED:
            if tag in self._skipping:
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif not self._skipping:
            if tag == "a" and self._links:
                href, start = self._links.pop()
                label = "".join(self.parts[start:]).strip()
                if href and label != href:
                    self.parts.append(f" ({href})" if label else href)
            self.parts.append(_BLOCKS.get(tag, ""))
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._title_state == 1:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data if self._pre else data.replace("\n", " "))


def html_to_text(html: str) -> str:
    """The title on the first line, then the visible text, one block per line."""
    parser = _Readable()
    parser.feed(html)
    parser.close()
    lines: list[str] = []
    for line in "".join(parser.parts).split("\n"):
        line = " ".join(line.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    body = "\n".join(lines).strip()
    title = " ".join("".join(parser.title).split())
    return f"{title}\n\n{body}".strip() if title else body
