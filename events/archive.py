"""Archive files: old events written out for support to keep, and read back for replay.

An archive is a stream of msgpack values: first a header map (``format``, ``version``,
``before``, ``written_at``), then one array per event ``[seq, stream, version, type,
recorded_at_us, data]``, where ``data`` is the log's own record in the same codec, byte
for byte. ``ArchiveLog`` reads a file back as a read-only log (``read_chunks``,
``last_seq``, ``codec``), so ``events replay --from-archive`` folds it with the same code
as the live log.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from events.codec import DEFAULT_CODEC, Codec
from events.errors import EventLogError
from events.recorded import RawRecord, from_micros, to_micros
from events.store import EventStore

FORMAT = "email-service-event-archive"
VERSION = 1
_CHUNK = 5_000


def write_archive(
    store: EventStore, before: datetime, target: BinaryIO, *, written_at: datetime
) -> int:
    """Write every event recorded before ``before`` to ``target``; return how many.

    Reads the log by ``seq`` and stops at the first event at or after ``before`` (the
    log's times never go down along ``seq``).
    """
    cutoff = to_micros(before)
    packer = msgpack.Packer(use_bin_type=True)
    target.write(
        packer.pack(
            {
                "format": FORMAT,
                "version": VERSION,
                "before": before.isoformat(),
                "written_at": written_at.isoformat(),
            }
        )
    )
    count = 0
    for chunk in store.read_chunks(0):
        for row in chunk:
            if row[4] >= cutoff:
                return count
            target.write(packer.pack(list(row)))
            count += 1
    return count


def write_archive_file(
    store: EventStore, before: datetime, path: Path, *, written_at: datetime
) -> int:
    """``write_archive`` to ``path``, made whole first under a temporary name (0600)."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        count = write_archive(store, before, out, written_at=written_at)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return count


class ArchiveLog:
    """An archive file read as a log (read-only; what ``replay_store`` needs)."""

    def __init__(self, path: Path, codec: Codec = DEFAULT_CODEC) -> None:
        """Read the header; raises ``EventLogError`` when the file is not an archive."""
        self.codec = codec
        self._path = path
        self.header = self._header()

    def _values(self) -> Iterator[Any]:
        with self._path.open("rb") as f:
            yield from msgpack.Unpacker(f, raw=False, strict_map_key=False)

    def _header(self) -> dict[str, Any]:
        try:
            first = next(self._values(), None)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
            raise EventLogError(f"{self._path} is not an event archive ({exc})") from None
        if not isinstance(first, dict) or first.get("format") != FORMAT:
            raise EventLogError(f"{self._path} is not an event archive")
        if first.get("version") != VERSION:
            raise EventLogError(
                f"{self._path}: archive version {first.get('version')!r} is unknown"
            )
        return first

    def _rows(self) -> Iterator[RawRecord]:
        values = self._values()
        next(values)  # the header
        for v in values:
            yield RawRecord(v[0], v[1], v[2], v[3], v[4], bytes(v[5]))

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_version: int = 0,
    ) -> Iterator[Sequence[RawRecord]]:
        """As ``EventStore.read_chunks``, over the file (read from its start each time)."""
        cutoff = None if until is None else to_micros(until)
        chunk: list[RawRecord] = []
        taken = 0
        for row in self._rows():
            if row.seq <= after_seq or (
                stream is not None and (row.stream != stream or row.version <= after_version)
            ):
                continue
            if cutoff is not None and row.recorded_at_us > cutoff:
                break
            if limit is not None and taken >= limit:
                break
            chunk.append(row)
            taken += 1
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def read_last(
        self, n: int, *, stream: str | None = None, up_to_seq: int | None = None
    ) -> list[RawRecord]:
        """As ``EventStore.read_last``, over the file."""
        kept: deque[RawRecord] = deque(maxlen=max(n, 0))
        for row in self._rows():
            if (stream is None or row.stream == stream) and (
                up_to_seq is None or row.seq <= up_to_seq
            ):
                kept.append(row)
        return list(kept) if n > 0 else []

    def last_seq(self) -> int:
        """The ``seq`` of the archive's newest event (0 if empty)."""
        last = 0
        for row in self._rows():
            last = row.seq
        return last

    def close(self) -> None:
        """Nothing to release (each read opens the file)."""

    def last_at(self) -> datetime | None:
        """When the archive's newest event was recorded."""
        last = None
        for row in self._rows():
            last = row.recorded_at_us
        return None if last is None else from_micros(last)
