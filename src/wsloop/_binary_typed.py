"""The typed accessors of :class:`~wsloop.BinaryData`: ``int8`` to ``uint64``, ``float32/64``.

They are a base class of :class:`~wsloop.BinaryData` (which documents them
as its own): each reads or writes one value at a byte offset, in the byte
order of the call or of the buffer, through a precompiled :mod:`struct`
codec, and refuses rather than wraps: an offset outside the buffer raises
:class:`IndexError`, a value outside the type :class:`ValueError`.
"""

from __future__ import annotations

import numbers
import operator
import struct
import sys
from typing import NamedTuple

__all__: list[str] = []

_FLOAT32_MAX: float = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
"""Largest finite float32, 3.4028234663852886e+38."""


class _IntCodec(NamedTuple):
    name: str
    size: int
    little: struct.Struct
    big: struct.Struct
    minimum: int
    maximum: int


class _FloatCodec(NamedTuple):
    name: str
    size: int
    little: struct.Struct
    big: struct.Struct
    maximum: float


def _int_codec(name: str, code: str, minimum: int, maximum: int) -> _IntCodec:
    little = struct.Struct("<" + code)
    return _IntCodec(name, little.size, little, struct.Struct(">" + code), minimum, maximum)


def _float_codec(name: str, code: str, maximum: float) -> _FloatCodec:
    little = struct.Struct("<" + code)
    return _FloatCodec(name, little.size, little, struct.Struct(">" + code), maximum)


_INT8 = _int_codec("int8", "b", -(2**7), 2**7 - 1)
_UINT8 = _int_codec("uint8", "B", 0, 2**8 - 1)
_INT16 = _int_codec("int16", "h", -(2**15), 2**15 - 1)
_UINT16 = _int_codec("uint16", "H", 0, 2**16 - 1)
_INT32 = _int_codec("int32", "i", -(2**31), 2**31 - 1)
_UINT32 = _int_codec("uint32", "I", 0, 2**32 - 1)
_INT64 = _int_codec("int64", "q", -(2**63), 2**63 - 1)
_UINT64 = _int_codec("uint64", "Q", 0, 2**64 - 1)
_FLOAT32 = _float_codec("float32", "f", _FLOAT32_MAX)
_FLOAT64 = _float_codec("float64", "d", sys.float_info.max)


def _range_error(offset: int, size: int, total: int, what: str) -> IndexError:
    return IndexError(
        f"offset {offset} with size {size} is out of range for {what} of length {total}"
    )


class _TypedAccess:
    """The typed reads and writes, over the ``_buf`` and ``little_endian`` of a subclass."""

    __slots__ = ()

    _buf: bytearray
    little_endian: bool

    # ------------------------------------------------------------------
    # Typed access (shared implementation)

    def _get_int(self, codec: _IntCodec, offset: int, little_endian: bool | None) -> int:
        if offset < 0 or offset + codec.size > len(self._buf):
            raise _range_error(offset, codec.size, len(self._buf), "BinaryData")
        little = self.little_endian if little_endian is None else little_endian
        value: int = (codec.little if little else codec.big).unpack_from(self._buf, offset)[0]
        return value

    def _set_int(
        self, codec: _IntCodec, offset: int, value: int, little_endian: bool | None
    ) -> None:
        if offset < 0 or offset + codec.size > len(self._buf):
            raise _range_error(offset, codec.size, len(self._buf), "BinaryData")
        value = operator.index(value)
        if not codec.minimum <= value <= codec.maximum:
            raise ValueError(
                f"value {value} is out of range for {codec.name}"
                f" [{codec.minimum}, {codec.maximum}]"
            )
        little = self.little_endian if little_endian is None else little_endian
        (codec.little if little else codec.big).pack_into(self._buf, offset, value)

    def _get_float(self, codec: _FloatCodec, offset: int, little_endian: bool | None) -> float:
        if offset < 0 or offset + codec.size > len(self._buf):
            raise _range_error(offset, codec.size, len(self._buf), "BinaryData")
        little = self.little_endian if little_endian is None else little_endian
        value: float = (codec.little if little else codec.big).unpack_from(self._buf, offset)[0]
        return value

    def _set_float(
        self, codec: _FloatCodec, offset: int, value: float, little_endian: bool | None
    ) -> None:
        if offset < 0 or offset + codec.size > len(self._buf):
            raise _range_error(offset, codec.size, len(self._buf), "BinaryData")
        checked: object = value  # the annotation is a promise callers may break
        if type(checked) is not float and not isinstance(checked, numbers.Real):
            raise TypeError(
                f"{codec.name} value must be a real number, not {type(value).__name__}"
            )
        little = self.little_endian if little_endian is None else little_endian
        # Pack before writing: a failed pack_into would already have zeroed the target bytes.
        try:
            packed = (codec.little if little else codec.big).pack(float(value))
        except OverflowError:
            raise ValueError(
                f"value {value!r} is out of range for {codec.name}"
                f" [-{codec.maximum!r}, {codec.maximum!r}]"
            ) from None
        self._buf[offset : offset + codec.size] = packed

    # ------------------------------------------------------------------
    # Typed getters and setters

    def get_int8(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read a signed 8-bit integer.

        Args:
            offset: Byte offset to read at.
            little_endian: Accepted for symmetry; one byte has no byte order.

        Returns:
            The value, -128 to 127.

        Raises:
            IndexError: The byte is outside the buffer.
        """
        return self._get_int(_INT8, offset, little_endian)

    def set_int8(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write a signed 8-bit integer.

        Args:
            offset: Byte offset to write at.
            value: The value, -128 to 127.
            little_endian: Accepted for symmetry; one byte has no byte order.

        Raises:
            IndexError: The byte is outside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_INT8, offset, value, little_endian)

    def get_uint8(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read an unsigned 8-bit integer.

        Args:
            offset: Byte offset to read at.
            little_endian: Accepted for symmetry; one byte has no byte order.

        Returns:
            The value, 0 to 255.

        Raises:
            IndexError: The byte is outside the buffer.
        """
        return self._get_int(_UINT8, offset, little_endian)

    def set_uint8(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write an unsigned 8-bit integer.

        Args:
            offset: Byte offset to write at.
            value: The value, 0 to 255.
            little_endian: Accepted for symmetry; one byte has no byte order.

        Raises:
            IndexError: The byte is outside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_UINT8, offset, value, little_endian)

    def get_int16(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read a signed 16-bit integer.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, -32768 to 32767.

        Raises:
            IndexError: The two bytes are not all inside the buffer.
        """
        return self._get_int(_INT16, offset, little_endian)

    def set_int16(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write a signed 16-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, -32768 to 32767.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The two bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_INT16, offset, value, little_endian)

    def get_uint16(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read an unsigned 16-bit integer.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, 0 to 65535.

        Raises:
            IndexError: The two bytes are not all inside the buffer.
        """
        return self._get_int(_UINT16, offset, little_endian)

    def set_uint16(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write an unsigned 16-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, 0 to 65535.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The two bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_UINT16, offset, value, little_endian)

    def get_int32(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read a signed 32-bit integer.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, -2**31 to 2**31 - 1.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
        """
        return self._get_int(_INT32, offset, little_endian)

    def set_int32(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write a signed 32-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, -2**31 to 2**31 - 1.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_INT32, offset, value, little_endian)

    def get_uint32(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read an unsigned 32-bit integer.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, 0 to 2**32 - 1.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
        """
        return self._get_int(_UINT32, offset, little_endian)

    def set_uint32(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write an unsigned 32-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, 0 to 2**32 - 1.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_UINT32, offset, value, little_endian)

    def get_int64(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read a signed 64-bit integer.

        Python integers are unbounded, so no precision is lost (unlike a
        JavaScript number).

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, -2**63 to 2**63 - 1.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
        """
        return self._get_int(_INT64, offset, little_endian)

    def set_int64(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write a signed 64-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, -2**63 to 2**63 - 1.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_INT64, offset, value, little_endian)

    def get_uint64(self, offset: int, *, little_endian: bool | None = None) -> int:
        """Read an unsigned 64-bit integer.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, 0 to 2**64 - 1.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
        """
        return self._get_int(_UINT64, offset, little_endian)

    def set_uint64(self, offset: int, value: int, *, little_endian: bool | None = None) -> None:
        """Write an unsigned 64-bit integer.

        Args:
            offset: Byte offset of the first byte.
            value: The value, 0 to 2**64 - 1.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
            ValueError: ``value`` is out of range.
        """
        self._set_int(_UINT64, offset, value, little_endian)

    def get_float32(self, offset: int, *, little_endian: bool | None = None) -> float:
        """Read an IEEE 754 single-precision float.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value, widened exactly to a Python float.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
        """
        return self._get_float(_FLOAT32, offset, little_endian)

    def set_float32(self, offset: int, value: float, *, little_endian: bool | None = None) -> None:
        """Write an IEEE 754 single-precision float.

        ``value`` is rounded to the nearest float32, so reading it back may
        give a slightly different number (``0.1`` reads back as
        ``0.10000000149011612``). Infinities and NaN are stored as such.

        Args:
            offset: Byte offset of the first byte.
            value: The value; an ``int`` or any real number is accepted.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The four bytes are not all inside the buffer.
            TypeError: ``value`` is not a real number.
            ValueError: ``value`` is finite but rounds to infinity in float32.
        """
        self._set_float(_FLOAT32, offset, value, little_endian)

    def get_float64(self, offset: int, *, little_endian: bool | None = None) -> float:
        """Read an IEEE 754 double-precision float.

        Args:
            offset: Byte offset of the first byte.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Returns:
            The value.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
        """
        return self._get_float(_FLOAT64, offset, little_endian)

    def set_float64(self, offset: int, value: float, *, little_endian: bool | None = None) -> None:
        """Write an IEEE 754 double-precision float.

        Args:
            offset: Byte offset of the first byte.
            value: The value; an ``int`` or any real number is accepted.
            little_endian: Byte order; ``None`` uses :attr:`little_endian`.

        Raises:
            IndexError: The eight bytes are not all inside the buffer.
            TypeError: ``value`` is not a real number.
            ValueError: ``value`` is an ``int`` too large for a float64.
        """
        self._set_float(_FLOAT64, offset, value, little_endian)
