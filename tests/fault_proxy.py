"""A small fault-injecting TCP proxy for tests (NOTES.md, "Fault injection").

``FaultProxy(upstream_host, upstream_port)`` listens on a free loopback port (``.port``)
and forwards every connection to the upstream server, in an asyncio loop on its own
thread. While it runs, a test can switch faults on and off from its own thread:

- ``set_latency(seconds)``: every chunk, either direction, is delayed that long.
- ``cut_all()``: abort every open connection at once (both sides).
- ``black_hole(True)``: bytes vanish in both directions; connections stay open, new ones
  are accepted and never reach the upstream (the client sees silence, then its timeout).
- ``refuse(True)``: stop listening, so connecting fails with "connection refused";
  ``refuse(False)`` listens again on the same port. Open connections are untouched.
- ``cut_when(pattern, direction=...)``: when ``pattern`` passes (it may straddle reads),
  forward it and then abort the client's connection. The server's side stays open until
  the server sends anything more (its reply, which the client never sees) or
  ``server_grace`` seconds pass, so a server that stores a message on the final ``.``
  does store it: "stored, but the reply never came". With ``direction="to_client"`` it
  cuts mid-response (IMAP: mid-FETCH). Fires once unless ``once=False``.

Counters: ``connections`` (accepted so far) and ``cuts`` (pattern cuts so far). ``stop()``
closes everything; the proxy is a context manager. Nothing here sleeps in the caller's
thread except while waiting for the loop to apply a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

Direction = Literal["to_server", "to_client"]
_CHUNK = 65536
_T = TypeVar("_T")


@dataclass
class _Cut:
    pattern: bytes
    direction: Direction
    once: bool
    server_grace: float


@dataclass(eq=False)  # identity: kept in a set
class _Link:
    """One proxied connection: the client's side and the server's side."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    client_cut: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 with switchable faults; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = _free_port(host)
        self.connections = 0
        self.cuts = 0
        self._latency = 0.0
        self._black_hole = False
        self._cut: _Cut | None = None
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # --- life -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start the loop thread and listen; returns self."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the loop thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- switches (any thread) ----------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every forwarded chunk by ``seconds`` (0 turns it off)."""
        self._sync(lambda: setattr(self, "_latency", seconds))

    def black_hole(self, on: bool = True) -> None:
        """Drop every byte in both directions while ``on``."""
        self._sync(lambda: setattr(self, "_black_hole", on))

    def cut_all(self) -> None:
        """Abort every open connection, both sides."""
        self._sync(self._abort_all)

    def refuse(self, on: bool = True) -> None:
        """Stop listening (connections are refused) while ``on``; listen again when off."""
        self._call(self._unlisten() if on else self._listen())

    def cut_when(
        self,
        pattern: bytes,
        *,
        direction: Direction = "to_server",
        once: bool = True,
        server_grace: float = 5.0,
    ) -> None:
        """Cut the client's connection right after ``pattern`` passes in ``direction``."""
        if not pattern:
            raise ValueError("cut_when needs a non-empty byte pattern")
        cut = _Cut(pattern, direction, once, server_grace)
        self._sync(lambda: setattr(self, "_cut", cut))

    def clear(self) -> None:
        """Turn every fault off (latency, black hole, pattern cut) and listen again."""
        self.set_latency(0.0)
        self.black_hole(False)
        self._sync(lambda: setattr(self, "_cut", None))
        self.refuse(False)

    # --- the loop's side ----------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def _sync(self, action: Callable[[], object]) -> None:
        async def run() -> None:
            action()

        self._call(run())

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True
            )

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _shutdown(self) -> None:
        await self._unlisten()
        self._abort_all()
        tasks = [task for link in self._links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _abort_all(self) -> None:
        for link in list(self._links):
            link.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(client=writer)
        self._links.add(link)
        try:
            if self._black_hole:
                await _drain_forever(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            link.server = up_writer
            link.tasks = [
                asyncio.ensure_future(self._pump(link, reader, up_writer, "to_server")),
                asyncio.ensure_future(self._pump(link, up_reader, writer, "to_client")),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            link.abort()
            self._links.discard(link)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        tail = b""
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                if link.client_cut:
                    # The server answered after the cut: the reply is lost; hang up on it.
                    break
                if self._latency:
                    await asyncio.sleep(self._latency)
                if self._black_hole:
                    continue
                cut = self._cut
                if cut is not None and cut.direction == direction:
                    window = tail + chunk
                    at = window.find(cut.pattern)
                    if at >= 0:
                        end = at + len(cut.pattern) - len(tail)
                        writer.write(chunk[:end])
                        await writer.drain()
                        await self._fire(link, cut)
                        return
                    tail = window[-(len(cut.pattern) - 1) :] if len(cut.pattern) > 1 else b""
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.client_cut:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    writer.close()

    async def _fire(self, link: _Link, cut: _Cut) -> None:
        self.cuts += 1
        if cut.once:
            self._cut = None
        link.client_cut = True
        link.client.transport.abort()
        server = link.server
        if server is not None:
            # Keep the server's side until it replies (the other pump then hangs up) or
            # the grace runs out, so it finishes what the bytes asked of it.
            self._loop.call_later(cut.server_grace, server.transport.abort)


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    while await reader.read(_CHUNK):
        pass


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
