"""TensorBoard-readable scalar logs without TensorFlow: a minimal event-file writer (and reader for tests).

An event file is a TFRecord stream of `Event` protocol buffers; scalars are Event{wall_time, step,
summary{value{tag, simple_value}}}. The few protobuf fields needed are encoded by hand, with the masked
CRC-32C checksums TensorBoard verifies.
"""

from __future__ import annotations

import os
import socket
import struct
import time


def _crc32c_table():
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  c = 0xFFFFFFFF
  for b in data:
    c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  c = crc32c(data)
  return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def _field_bytes(field: int, payload: bytes) -> bytes:
  return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, summary: bytes | None = None, file_version: str | None = None):
  msg = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
  if file_version is not None:
    msg += _field_bytes(3, file_version.encode())
  if summary is not None:
    msg += _field_bytes(5, summary)
  return msg


def _record(data: bytes) -> bytes:
  header = struct.pack("<Q", len(data))
  return header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))


class SummaryWriter:
  """Appends scalar summaries to an events.out.tfevents.* file in `logdir` (disabled: writes nothing, e.g.
  on the non-primary processes of a multi-host run)."""

  def __init__(self, logdir: str, enabled: bool = True):
    self._f = None
    if not enabled:
      return
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, "ab")
    self._f.write(_record(_event(time.time(), 0, file_version="brain.Event:2")))
    self._f.flush()

  def scalar(self, tag: str, value: float, step: int) -> None:
    if self._f is None:
      return
    val = _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value))
    self._f.write(_record(_event(time.time(), int(step), summary=_field_bytes(1, val))))

  def flush(self) -> None:
    if self._f is not None:
      self._f.flush()

  def close(self) -> None:
    if self._f is not None:
      self._f.close()


def read_scalars(path: str) -> list[tuple[str, int, float]]:
  """(tag, step, value) of every scalar in an event file, checking the CRCs (for tests)."""
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    (n,) = struct.unpack_from("<Q", data, pos)
    (hcrc,) = struct.unpack_from("<I", data, pos + 8)
    if hcrc != _masked_crc(data[pos:pos + 8]):
      raise ValueError(f"{path}: bad length CRC at byte {pos}")
    rec = data[pos + 12: pos + 12 + n]
    (dcrc,) = struct.unpack_from("<I", data, pos + 12 + n)
    if dcrc != _masked_crc(rec):
      raise ValueError(f"{path}: bad data CRC at byte {pos}")
    pos += 16 + n
    out += _parse_event(rec)
  return out


def _read_varint(b: bytes, i: int):
  shift = n = 0
  while True:
    c = b[i]
    i += 1
    n |= (c & 0x7F) << shift
    shift += 7
    if not c & 0x80:
      return n, i


def _fields(b: bytes):
  i = 0
  while i < len(b):
    key, i = _read_varint(b, i)
    field, wire = key >> 3, key & 7
    if wire == 0:
      v, i = _read_varint(b, i)
    elif wire == 1:
      v, i = b[i:i + 8], i + 8
    elif wire == 5:
      v, i = b[i:i + 4], i + 4
    else:
      n, i = _read_varint(b, i)
      v, i = b[i:i + n], i + n
    yield field, v


def _parse_event(rec: bytes):
  step, out = 0, []
  for field, v in _fields(rec):
    if field == 2:
      step = v
    elif field == 5:
      for f2, value in _fields(v):
        if f2 == 1:
          tag, simple = None, None
          for f3, x in _fields(value):
            if f3 == 1:
              tag = x.decode()
            elif f3 == 2:
              (simple,) = struct.unpack("<f", x)
          out.append((tag, None, simple))
  return [(t, step, v) for t, _, v in out]
