"""The msgpack codec: events to bytes and back, with upcasters for old versions.

A record is the msgpack array ``[type_name, schema_version, [field values…]]``.
Fields are positional in the order of the dataclass (a version's shape never
changes, so position is stable and the record stays small); times are msgpack
timestamps (extension type -1) and decode as timezone-aware UTC datetimes; a
nested value type (``Diagnostic``) is an array of its own fields.

Upcasters turn the field list of ``(type_name, version)`` into the field list of
``version + 1``; decoding applies them in a chain up to the class's ``VERSION``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import msgpack

from events.errors import CorruptEventError, UnknownEventTypeError
from events.recorded import RawRecord, Recorded, from_micros
from events.types import EVENT_TYPES, Event

Upcaster = Callable[[list[Any]], list[Any]]
_Decoder = Callable[[list[Any]], Event]

_PRIMITIVES: frozenset[Any] = frozenset({str, int, float, bool, bytes, datetime, type(None)})


def _value_codec(tp: Any) -> tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None]:
    """Return (encode, decode) for one field type; None where the value passes as is."""
    if tp in _PRIMITIVES:
        return None, None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        codecs = [_value_codec(a) for a in args]
        if all(enc is None and dec is None for enc, dec in codecs):
            return None, None
        raise TypeError(f"unsupported union field type {tp!r}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        enc_item, dec_item = _value_codec(args[0])
        if enc_item is None or dec_item is None:
            return (lambda v: list(v)), (lambda v: tuple(v))
        enc_i, dec_i = enc_item, dec_item
        return (lambda v: [enc_i(x) for x in v]), (lambda v: tuple(dec_i(x) for x in v))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_codec(tp)
    raise TypeError(f"unsupported field type {tp!r}")


def _dataclass_codec(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    codecs = [_value_codec(hints[n]) for n in names]

    def encode(obj: Any) -> list[Any]:
        return [
            getattr(obj, n) if enc is None else enc(getattr(obj, n))
            for n, (enc, _) in zip(names, codecs, strict=True)
        ]

    def decode(values: list[Any]) -> Any:
        return cls(
            *[v if dec is None else dec(v) for v, (_, dec) in zip(values, codecs, strict=True)]
        )

    return encode, decode


def _is_plain_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return (
        typing.get_origin(tp) is tuple
        and len(args) == 2
        and args[1] is Ellipsis
        and args[0] in _PRIMITIVES
    )


def _is_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_decoder(cls: type[Event], positions: list[tuple[int, Callable[[Any], Any]]]) -> _Decoder:
    def decode(values: list[Any]) -> Event:
        for i, convert in positions:
            values[i] = convert(values[i])
        return cls(*values)

    return decode


def _rare_items(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A tuple field of value objects that is empty in nearly every record (the warnings of
    ``SelfTestPassed``): the empty one costs one test."""
    return lambda v: decode(v) if v else ()


def _chained(upcasters: list[Upcaster], decode: _Decoder) -> _Decoder:
    def decode_old(values: list[Any]) -> Event:
        for upcast in upcasters:
            values = upcast(values)
        return decode(values)

    return decode_old


class Codec:
    """Encodes and decodes events of a fixed set of types; safe to share between threads."""

    def __init__(
        self,
        event_types: Iterable[type[Event]] = EVENT_TYPES,
        upcasters: dict[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self._types: dict[str, type[Event]] = {}
        self._encoders: dict[type[Event], Callable[[Event], list[Any]]] = {}
        self._decoders: dict[tuple[str, int], _Decoder] = {}
        self._arity: dict[tuple[str, int], int] = {}
        self._upcasters = dict(upcasters or {})
        for cls in event_types:
            self._register(cls)
        # The hot loops' decoders: every current version, and each old version that has
        # its upcasters (a log written before a new version replays without the slow path).
        self._fast: dict[tuple[str, int], _Decoder] = dict(self._decoders)
        for name, cls in self._types.items():
            for version in range(1, cls.VERSION):
                chain = [self._upcasters.get((name, v)) for v in range(version, cls.VERSION)]
                if all(up is not None for up in chain):
                    chain_found = [up for up in chain if up is not None]
                    current = self._decoders[(name, cls.VERSION)]
                    self._fast[(name, version)] = _chained(chain_found, current)

    def _register(self, cls: type[Event]) -> None:
        name = cls.__name__
        self._types[name] = cls
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        codecs = [_value_codec(hints[n]) for n in names]
        self._arity[(name, cls.VERSION)] = len(names)
        if all(enc is None and dec is None for enc, dec in codecs):
            # The hot path: every field passes through msgpack unchanged.
            self._encoders[cls] = lambda e: [getattr(e, n) for n in names]
            self._decoders[(name, cls.VERSION)] = lambda values: cls(*values)
        elif all(
            _is_tuple(hints[n]) or dec is None for n, (_, dec) in zip(names, codecs, strict=True)
        ):
            # Next hottest: some fields are tuples (SelfTestPassed: its components, and its
            # warnings, nearly always empty).
            tuples: list[tuple[int, Callable[[Any], Any]]] = [
                (i, tuple if _is_plain_tuple(hints[n]) else _rare_items(dec))
                for i, (n, (_, dec)) in enumerate(zip(names, codecs, strict=True))
                if dec is not None
            ]
            if all(
                enc is None or _is_plain_tuple(hints[n])
                for n, (enc, _) in zip(names, codecs, strict=True)
            ):
                self._encoders[cls] = lambda e: [getattr(e, n) for n in names]
            else:
                self._encoders[cls] = _dataclass_codec(cls)[0]
            self._decoders[(name, cls.VERSION)] = _tuple_decoder(cls, tuples)
        else:
            encode, decode = _dataclass_codec(cls)
            self._encoders[cls] = encode
            self._decoders[(name, cls.VERSION)] = decode

    @property
    def decoders(self) -> dict[tuple[str, int], Callable[[list[Any]], Event]]:
        """The decoders by (type name, version), for hot loops: each current version, and
        each old one through its upcasters. A record they fail on goes to ``decode``,
        which says precisely what is wrong."""
        return self._fast

    @property
    def arity(self) -> dict[tuple[str, int], int]:
        """The field count of each current version, for checking without decoding."""
        return self._arity

    @property
    def type_names(self) -> frozenset[str]:
        """The names of the event types this codec knows."""
        return frozenset(self._types)

    def encode(self, event: Event) -> bytes:
        """Return the record bytes of ``event``."""
        cls = type(event)
        try:
            encoder = self._encoders[cls]
        except KeyError:
            raise TypeError(f"{cls.__name__} is not a registered event type") from None
        payload = [cls.__name__, cls.VERSION, encoder(event)]
        return msgpack.packb(payload, datetime=True)  # type: ignore[no-any-return]

    def decode(self, data: bytes, seq: int = 0) -> Event:
        """Return the event held in ``data``; ``seq`` names the record in errors.

        Raises ``UnknownEventTypeError`` for a type or version this code lacks and
        ``CorruptEventError`` for anything else that does not decode.
        """
        try:
            name, version, values = msgpack.unpackb(data, timestamp=3, use_list=True)
        except Exception as exc:  # msgpack raises several unrelated types
            raise CorruptEventError(seq, f"not a valid record ({exc})") from None
        if (
            not isinstance(name, str)
            or not isinstance(version, int)
            or not isinstance(values, list)
        ):
            raise CorruptEventError(seq, "not a [type, version, fields] record")
        decoder = self._decoders.get((name, version))
        if decoder is None:
            return self._decode_old(name, version, values, seq)
        try:
            return decoder(values)
        except Exception as exc:
            raise CorruptEventError(
                seq, f"{name} v{version} does not fit its fields ({exc})"
            ) from None

    def _decode_old(self, name: str, version: int, values: list[Any], seq: int) -> Event:
        cls = self._types.get(name)
        if cls is None:
            raise UnknownEventTypeError(seq, f"unknown event type {name!r}")
        if version > cls.VERSION or version < 1:
            raise UnknownEventTypeError(seq, f"{name} has no version {version!r}")
        while version < cls.VERSION:
            upcast = self._upcasters.get((name, version))
            if upcast is None:
                raise UnknownEventTypeError(seq, f"no upcaster for {name} v{version}")
            try:
                values = upcast(values)
            except Exception as exc:
                raise CorruptEventError(
                    seq, f"upcasting {name} v{version} failed ({exc})"
                ) from None
            version += 1
        return self.decode(msgpack.packb([name, version, values], datetime=True), seq)

    def decode_chunks(
        self,
        chunks: Iterable[Sequence[RawRecord]],
        *,
        on_corrupt: Callable[[CorruptEventError], None] | None = None,
    ) -> Iterator[Recorded]:
        """Decode chunks of stored rows in order.

        A corrupt record raises ``CorruptEventError`` naming its ``seq``, or, when
        ``on_corrupt`` is given, is handed to it and skipped. This is the replay's
        hot loop, so the common case is inlined here rather than calling ``decode``.
        """
        decoders = self._fast
        unpack = msgpack.unpackb
        last_us = -1
        when = from_micros(0)
        for chunk in chunks:
            for seq, stream, version, _type, at_us, data in chunk:
                if at_us != last_us:  # group commit: neighbours usually share a time
                    last_us = at_us
                    when = from_micros(at_us)
                try:
                    name, schema, values = unpack(data, timestamp=3)
                    event = decoders[(name, schema)](values)
                except Exception:
                    try:
                        event = self.decode(data, seq)  # the slow path names the fault
                    except CorruptEventError as exc:
                        if on_corrupt is None:
                            raise
                        on_corrupt(exc)
                        continue
                yield Recorded(seq, stream, version, when, event)


def _not_recovered(values: list[Any]) -> list[Any]:
    """v1 -> v2 of the mail outcome events: ``recovered`` appended, False (a v1 event was
    always appended as it happened)."""
    return [*values, False]


def _no_warnings(values: list[Any]) -> list[Any]:
    """v1 -> v2 of ``SelfTestPassed``: ``warnings`` appended, empty (a v1 self-test had none:
    a row the outbox refused was only in its ``MessageSendFailed``)."""
    return [*values, []]


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("SelfTestPassed", 1): _no_warnings,
    ("MessageSent", 1): _not_recovered,
    ("MessageSendFailed", 1): _not_recovered,
    ("MessageReceived", 1): _not_recovered,
}
"""The project's upcasters, keyed by (type name, version they read); docs/events.md says
how to add one."""

DEFAULT_CODEC = Codec(EVENT_TYPES, UPCASTERS)
