"""Reading SMILE, the binary JSON Elasticsearch writes its snapshot metadata in.

Only what Elasticsearch's repository files use: shared key names (on), shared string values
(off: Elasticsearch never sets it), strings, numbers, booleans, null, binary, arrays and
objects (the format: https://github.com/FasterXML/smile-format-specification). Part of the
Elasticsearch door (backups/elastic/repository.py reads the files); it reads bytes only.
"""

from __future__ import annotations

import struct

HEADER = b":)\n"


class SmileError(ValueError):
    """The bytes are not SMILE this reader understands."""


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos
        self.keys: list[str] = []

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise SmileError("the document ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise SmileError("the document ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def vint(self) -> int:
        value = 0
        while True:
            b = self.byte()
            if b & 0x80:  # the last byte holds 6 bits
                return (value << 6) | (b & 0x3F)
            value = (value << 7) | b

    def base128(self, count: int) -> int:
        """A float's bits: ``count`` bytes of 7 bits, the first holding the high ones."""
        value = 0
        for b in self.take(count):
            value = (value << 7) | (b & 0x7F)
        return value & ((1 << 64) - 1)

    def until_end_marker(self) -> bytes:
        end = self.data.find(b"\xfc", self.pos)
        if end == -1:
            raise SmileError("a long string has no end marker")
        chunk = self.data[self.pos : end]
        self.pos = end + 1
        return chunk

    def seven_bit(self, count: int) -> bytes:
        """``count`` bytes written 7 bits to a byte."""
        raw = self.take((count * 8 + 6) // 7)
        bits = int.from_bytes(bytes(b & 0x7F for b in raw), "big")
        total = len(raw) * 7
        # the last byte holds only the bits left over, right-aligned
        spare = total - count * 8
        if spare:
            last_bits = 7 - spare
            bits = ((bits >> 7) << last_bits) | (raw[-1] & ((1 << last_bits) - 1))
        return bits.to_bytes(count, "big") if count else b""

    def key(self) -> str | None:
        """The next key of an object, or None at its end."""
        b = self.byte()
        if b == 0xFB:
            return None
        if b == 0x20:
            return ""
        if 0x30 <= b <= 0x33:
            return self.shared_key(((b & 0x03) << 8) | self.byte())
        if 0x40 <= b <= 0x7F:
            return self.shared_key(b & 0x3F)
        if b == 0x34:
            return self.remember(self.until_end_marker().decode())
        if 0x80 <= b <= 0xBF:
            return self.remember(self.take((b & 0x3F) + 1).decode("ascii"))
        if 0xC0 <= b <= 0xF7:
            return self.remember(self.take((b & 0x3F) + 2).decode())
        raise SmileError(f"byte {b:#04x} cannot start a key")

    def shared_key(self, index: int) -> str:
        if index >= len(self.keys):
            raise SmileError(f"a key refers to shared name {index}, never written")
        return self.keys[index]

    def remember(self, name: str) -> str:
        if len(self.keys) >= 1024:
            self.keys = []
        if len(name.encode()) <= 64:
            self.keys.append(name)
        return name

    def value(self):
        b = self.byte()
        if b < 0x20 or b == 0xEC:
            raise SmileError("shared string values are not expected in Elasticsearch's files")
        if b == 0x20:
            return ""
        if b in (0x21, 0x22, 0x23):
            return (None, False, True)[b - 0x21]
        if b in (0x24, 0x25):
            zigzag = self.vint()
            return (zigzag >> 1) ^ -(zigzag & 1)
        if b == 0x26:
            return int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
        if b == 0x28:
            return struct.unpack(">f", self.base128(5).to_bytes(4, "big"))[0]
        if b == 0x29:
            return struct.unpack(">d", self.base128(10).to_bytes(8, "big"))[0]
        if b == 0x2A:
            self.vint()  # the scale
            return float(int.from_bytes(self.seven_bit(self.vint()), "big", signed=True))
        if 0x40 <= b <= 0x5F:
            return self.take((b & 0x1F) + 1).decode("ascii")
        if 0x60 <= b <= 0x7F:
            return self.take((b & 0x1F) + 33).decode("ascii")
        if 0x80 <= b <= 0x9F:
            return self.take((b & 0x1F) + 2).decode()
        if 0xA0 <= b <= 0xBF:
            return self.take((b & 0x1F) + 34).decode()
        if 0xC0 <= b <= 0xDF:
            zigzag = b & 0x1F
            return (zigzag >> 1) ^ -(zigzag & 1)
        if b in (0xE0, 0xE4):
            return self.until_end_marker().decode()
        if b == 0xE8:
            return self.seven_bit(self.vint())
        if b == 0xFD:
            return self.take(self.vint())
        if b == 0xF8:
            items = []
            while self.data[self.pos : self.pos + 1] != b"\xf9":
                items.append(self.value())
            self.pos += 1
            return items
        if b == 0xFA:
            found = {}
            while (name := self.key()) is not None:
                found[name] = self.value()
            return found
        raise SmileError(f"byte {b:#04x} cannot start a value")


def loads(data: bytes):
    """The document the SMILE bytes hold (starting with their ":)\\n" header)."""
    start = data.find(HEADER)
    if start == -1 or len(data) < start + 4:
        raise SmileError("no SMILE header")
    if data[start + 3] & 0x02:
        raise SmileError("shared string values are on")
    return _Reader(data, start + 4).value()
