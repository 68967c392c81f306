"""A resizable byte buffer with typed access, after Construct 3's *Binary Data* object.

:class:`BinaryData` wraps a :class:`bytearray` and adds what a game usually
needs to build or parse a binary WebSocket message: typed reads and writes at
byte offsets (``int8`` to ``uint64``, ``float32`` and ``float64``) in either
byte order, and conversions to and from UTF-8 text, base64 and hex.

Like Construct's object it is little-endian unless told otherwise, either for
the whole buffer (the ``little_endian`` attribute) or for a single call (the
``little_endian`` keyword of every typed accessor).

Unlike JavaScript's ``DataView`` it never fails silently: an offset outside
the buffer raises :class:`IndexError` and an integer that does not fit the
requested type raises :class:`ValueError` instead of wrapping around.

.. code-block:: python

    msg = BinaryData(7)
    msg.set_uint8(0, 3)          # message type
    msg.set_uint16(1, player_id)
    msg.set_float32(3, x)
    ws.send_binary(msg)
"""

from __future__ import annotations

import base64
import binascii
import builtins
import operator
from typing import TYPE_CHECKING, ClassVar, SupportsIndex, overload

from ._binary_typed import _range_error, _TypedAccess

if TYPE_CHECKING:
    from typing import Self, TypeAlias

__all__ = ["BinaryData"]

BytesLike: TypeAlias = "bytes | bytearray | memoryview | BinaryData"
"""What the methods of :class:`BinaryData` accept as binary input."""

_REPR_PREVIEW = 16
"""How many bytes :meth:`BinaryData.__repr__` shows in hex."""

_RESIZE_WHILE_EXPORTED = (
    "cannot change the length of BinaryData while a memoryview of it is alive; release it first"
)


def _span(offset: int, length: int | None, total: int, what: str) -> int:
    """Check a byte range and return its length.

    Args:
        offset: First byte of the range.
        length: Number of bytes, or ``None`` for everything from ``offset`` to the end.
        total: Length of the buffer the range lies in.
        what: Name of that buffer, for error messages.

    Returns:
        The length of the range.

    Raises:
        IndexError: The range does not lie inside the buffer.
        ValueError: ``length`` is negative.
    """
    offset = operator.index(offset)
    if length is None:
        if offset < 0 or offset > total:
            raise IndexError(f"offset {offset} is out of range for {what} of length {total}")
        return total - offset
    length = operator.index(length)
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if offset < 0 or offset + length > total:
        raise _range_error(offset, length, total, what)
    return length


def _view(data: BytesLike) -> memoryview:
    """Return a flat, one-byte-per-item view of a bytes-like object.

    Raises:
        TypeError: ``data`` does not support the buffer protocol.
    """
    if isinstance(data, BinaryData):
        return memoryview(data._buf)
    checked: object = data  # the annotation is a promise callers may break
    if isinstance(checked, str):
        raise TypeError("expected a bytes-like object, not str (use set_from_text for text)")
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _to_bytes(data: BytesLike) -> bytes:
    """Copy a bytes-like object into :class:`bytes` (no copy if it already is).

    Raises:
        TypeError: ``data`` does not support the buffer protocol.
    """
    if type(data) is bytes:
        return data
    with _view(data) as view:
        return view.tobytes()


class BinaryData(_TypedAccess):
    """A resizable byte buffer with typed get and set at byte offsets.

    The Python counterpart of Construct 3's *Binary Data* object. The bytes
    live in a :class:`bytearray` (see :attr:`buffer`); ``bytes(bd)`` and
    :meth:`memoryview` hand them to anything that takes a bytes-like object.

    Offsets are byte offsets from the start of the buffer; unlike indexing
    with ``bd[i]``, the typed accessors do not accept negative offsets.

    Two objects are equal when their contents are equal; the byte order
    setting plays no part. A :class:`BinaryData` also compares equal to a
    :class:`bytes`, :class:`bytearray` or :class:`memoryview` with the same
    contents. It is mutable and therefore unhashable.

    While a :class:`memoryview` of the buffer is alive (from
    :meth:`memoryview` or ``memoryview(bd.buffer)``), the methods that change
    its length raise :class:`BufferError`; release the view first.

    Args:
        data: Initial contents, copied: a bytes-like object or another
            :class:`BinaryData`; an ``int`` for that many zero bytes; ``None``
            for an empty buffer.
        little_endian: Default byte order of the typed accessors. Construct
            defaults to little-endian, and so does this class.

    Raises:
        TypeError: ``data`` is of an unsupported type (a ``str`` must go
            through :meth:`from_text`).
        ValueError: ``data`` is a negative ``int``.

    Attributes:
        little_endian: Byte order used by the typed accessors when a call does
            not give its own ``little_endian``.
    """

    __slots__ = ("_buf", "little_endian")

    __hash__: ClassVar[None]  # type: ignore[assignment]

    _buf: bytearray
    little_endian: bool

    def __init__(self, data: BytesLike | int | None = None, *, little_endian: bool = True) -> None:
        if data is None:
            self._buf = bytearray()
        elif isinstance(data, bool):
            raise TypeError("expected a bytes-like object, an int length or None, not bool")
        elif isinstance(data, int):
            if data < 0:
                raise ValueError(f"length must not be negative, got {data}")
            self._buf = bytearray(data)
        else:
            self._buf = bytearray(_view(data))
        self.little_endian = little_endian

    # ------------------------------------------------------------------
    # Alternative constructors

    @classmethod
    def from_text(cls, text: str, *, little_endian: bool = True) -> Self:
        """Create a buffer holding ``text`` encoded as UTF-8.

        Args:
            text: The text to encode.
            little_endian: Default byte order of the new buffer.

        Returns:
            The new buffer.

        Raises:
            TypeError: ``text`` is not a ``str``.
            UnicodeEncodeError: ``text`` contains lone surrogates.
        """
        result = cls(little_endian=little_endian)
        result.set_from_text(text)
        return result

    @classmethod
    def from_base64(cls, s: str, *, little_endian: bool = True) -> Self:
        """Create a buffer from base64 text (standard alphabet, padded).

        Args:
            s: The base64 text; ASCII whitespace in it is ignored.
            little_endian: Default byte order of the new buffer.

        Returns:
            The new buffer.

        Raises:
            TypeError: ``s`` is not a ``str``.
            ValueError: ``s`` is not valid base64.
        """
        result = cls(little_endian=little_endian)
        result.set_from_base64(s)
        return result

    @classmethod
    def from_hex(cls, s: str, *, little_endian: bool = True) -> Self:
        """Create a buffer from hexadecimal text.

        Args:
            s: Two hex digits per byte, either case; whitespace is ignored.
            little_endian: Default byte order of the new buffer.

        Returns:
            The new buffer.

        Raises:
            TypeError: ``s`` is not a ``str``.
            ValueError: ``s`` is not valid hex.
        """
        result = cls(little_endian=little_endian)
        result.set_from_hex(s)
        return result

    # ------------------------------------------------------------------
    # Container protocol and conversions

    def __len__(self) -> int:
        """Return the length of the buffer in bytes."""
        return len(self._buf)

    @property
    def byte_length(self) -> int:
        """The length of the buffer in bytes (Construct's ``ByteLength``)."""
        return len(self._buf)

    @property
    def buffer(self) -> bytearray:
        """The underlying :class:`bytearray` itself, not a copy.

        It is live: changes made through it show in this object and changes
        made through this object show in it, including changes of length.
        The same :class:`bytearray` is kept for the object's whole life.
        """
        return self._buf

    def memoryview(self) -> builtins.memoryview:
        """Return a writable :class:`memoryview` of the buffer.

        Writes through the view change this object. While the view is alive
        the buffer cannot change length; release it (``view.release()`` or a
        ``with`` block) before calling a method that does.

        Returns:
            A view of format ``"B"`` over the whole buffer.
        """
        return builtins.memoryview(self._buf)

    def __bytes__(self) -> bytes:
        """Return a copy of the contents as :class:`bytes`."""
        return bytes(self._buf)

    def to_bytes(self) -> bytes:
        """Return a copy of the contents as :class:`bytes`.

        Returns:
            The contents.
        """
        return bytes(self._buf)

    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> bytes: ...

    def __getitem__(self, index: SupportsIndex | slice) -> int | bytes:
        """Return one byte as an ``int``, or a slice as :class:`bytes`.

        Indexing follows :class:`bytearray`, so negative indices count from
        the end.

        Args:
            index: An integer index or a slice.

        Returns:
            The byte value (0 to 255) or a copy of the slice.

        Raises:
            IndexError: ``index`` is outside the buffer.
        """
        if isinstance(index, slice):
            return bytes(self._buf[index])
        try:
            return self._buf[index]
        except IndexError:
            raise IndexError(
                f"index {operator.index(index)} is out of range"
                f" for BinaryData of length {len(self._buf)}"
            ) from None

    def __eq__(self, other: object) -> bool:
        """Compare contents with another :class:`BinaryData` or a bytes-like object."""
        if isinstance(other, BinaryData):
            return self._buf == other._buf
        if isinstance(other, (bytes, bytearray, builtins.memoryview)):
            return self._buf == other
        return NotImplemented

    def __repr__(self) -> str:
        """Return the length and a hex preview of up to 16 bytes."""
        preview = self._buf[:_REPR_PREVIEW].hex()
        if len(self._buf) > _REPR_PREVIEW:
            preview += "..."
        order = "" if self.little_endian else ", little_endian=False"
        return f"{type(self).__name__}(length={len(self._buf)}, hex={preview!r}{order})"

    # ------------------------------------------------------------------
    # Whole-buffer changes

    def _splice(self, start: int, stop: int, data: bytes) -> None:
        """Replace ``self._buf[start:stop]`` with ``data``, explaining a BufferError."""
        try:
            self._buf[start:stop] = data
        except BufferError:
            raise BufferError(_RESIZE_WHILE_EXPORTED) from None

    def set_length(self, length: int) -> None:
        """Truncate the buffer, or extend it with zero bytes, to ``length`` bytes.

        Args:
            length: The new length.

        Raises:
            ValueError: ``length`` is negative.
            BufferError: A memoryview of the buffer is alive.
        """
        length = operator.index(length)
        if length < 0:
            raise ValueError(f"length must not be negative, got {length}")
        current = len(self._buf)
        if length < current:
            self._splice(length, current, b"")
        elif length > current:
            self._splice(current, current, bytes(length - current))

    def clear(self) -> None:
        """Empty the buffer.

        Raises:
            BufferError: A memoryview of the buffer is alive.
        """
        self._splice(0, len(self._buf), b"")

    def set_from_bytes(self, data: BytesLike) -> None:
        """Replace the whole contents with a copy of ``data``.

        Args:
            data: The new contents.

        Raises:
            TypeError: ``data`` is not bytes-like.
            BufferError: The length changes and a memoryview of the buffer is alive.
        """
        self._splice(0, len(self._buf), _to_bytes(data))

    def append(self, data: BytesLike) -> None:
        """Add a copy of ``data`` to the end of the buffer.

        Args:
            data: The bytes to add.

        Raises:
            TypeError: ``data`` is not bytes-like.
            BufferError: A memoryview of the buffer is alive.
        """
        extra = _to_bytes(data)
        if extra:
            end = len(self._buf)
            self._splice(end, end, extra)

    def fill(self, value: int, offset: int = 0, length: int | None = None) -> None:
        """Set a range of bytes to ``value``.

        Args:
            value: The byte value, 0 to 255.
            offset: First byte to set.
            length: Number of bytes to set; ``None`` for all from ``offset`` to the end.

        Raises:
            ValueError: ``value`` is not in 0 to 255, or ``length`` is negative.
            IndexError: The range does not lie inside the buffer.
        """
        value = operator.index(value)
        if not 0 <= value <= 0xFF:
            raise ValueError(f"fill value {value} is out of range [0, 255]")
        length = _span(offset, length, len(self._buf), "BinaryData")
        self._buf[offset : offset + length] = bytes((value,)) * length

    def copy_from(
        self,
        source: BytesLike,
        source_offset: int = 0,
        length: int | None = None,
        dest_offset: int = 0,
    ) -> None:
        """Copy bytes from ``source`` into this buffer, overwriting in place.

        The buffer never grows: the copied range must fit inside it as it is
        (call :meth:`set_length` first to make room). ``source`` may be this
        object itself, and the ranges may overlap.

        Args:
            source: Where to copy from.
            source_offset: First byte of ``source`` to copy.
            length: Number of bytes to copy; ``None`` for all of ``source``
                from ``source_offset`` to its end.
            dest_offset: Where in this buffer the first copied byte goes.

        Raises:
            TypeError: ``source`` is not bytes-like.
            ValueError: ``length`` is negative.
            IndexError: The range lies outside ``source``, or does not fit in
                this buffer at ``dest_offset``.
        """
        with _view(source) as view:
            length = _span(source_offset, length, len(view), "source")
            _span(dest_offset, length, len(self._buf), "destination")
            chunk = view[source_offset : source_offset + length].tobytes()
        self._buf[dest_offset : dest_offset + length] = chunk

    # ------------------------------------------------------------------
    # Text, base64 and hex

    def set_from_text(self, text: str) -> None:
        """Replace the whole contents with ``text`` encoded as UTF-8.

        Args:
            text: The text to encode.

        Raises:
            TypeError: ``text`` is not a ``str``.
            UnicodeEncodeError: ``text`` contains lone surrogates.
            BufferError: The length changes and a memoryview of the buffer is alive.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected str, not {type(text).__name__}")
        self._splice(0, len(self._buf), text.encode("utf-8"))

    def get_text(self, offset: int = 0, length: int | None = None) -> str:
        """Decode a range of the buffer as UTF-8.

        Args:
            offset: First byte to decode.
            length: Number of bytes; ``None`` for all from ``offset`` to the end.

        Returns:
            The decoded text.

        Raises:
            IndexError: The range does not lie inside the buffer.
            ValueError: ``length`` is negative.
            UnicodeDecodeError: The bytes are not valid UTF-8 (decoding is strict).
        """
        length = _span(offset, length, len(self._buf), "BinaryData")
        return self._buf[offset : offset + length].decode("utf-8")

    def set_from_base64(self, s: str) -> None:
        """Replace the whole contents with decoded base64.

        The standard alphabet (``+`` and ``/``) with ``=`` padding is
        required; ASCII whitespace such as line breaks is ignored.

        Args:
            s: The base64 text.

        Raises:
            TypeError: ``s`` is not a ``str``.
            ValueError: ``s`` is not valid base64; the contents are unchanged.
            BufferError: The length changes and a memoryview of the buffer is alive.
        """
        if not isinstance(s, str):
            raise TypeError(f"expected str, not {type(s).__name__}")
        compact = "".join(s.split())
        if not compact.isascii():
            raise ValueError("invalid base64: contains non-ASCII characters")
        try:
            decoded = base64.b64decode(compact, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64: {exc}") from None
        self._splice(0, len(self._buf), decoded)

    def get_base64(self) -> str:
        """Return the contents encoded as base64 (standard alphabet, padded).

        Returns:
            The base64 text, without line breaks.
        """
        return base64.b64encode(self._buf).decode("ascii")

    def set_from_hex(self, s: str) -> None:
        """Replace the whole contents with decoded hexadecimal text.

        Args:
            s: Two hex digits per byte, either case; whitespace is ignored.

        Raises:
            TypeError: ``s`` is not a ``str``.
            ValueError: ``s`` is not valid hex; the contents are unchanged.
            BufferError: The length changes and a memoryview of the buffer is alive.
        """
        if not isinstance(s, str):
            raise TypeError(f"expected str, not {type(s).__name__}")
        compact = "".join(s.split())
        if len(compact) % 2:
            raise ValueError(
                f"invalid hex: odd number of digits ({len(compact)}), expected two per byte"
            )
        try:
            decoded = bytes.fromhex(compact)
        except ValueError:
            position, char = next(
                (i, c) for i, c in enumerate(compact) if c not in "0123456789abcdefABCDEF"
            )
            raise ValueError(
                f"invalid hex: {char!r} at position {position} is not a hex digit"
            ) from None
        self._splice(0, len(self._buf), decoded)

    def get_hex(self) -> str:
        """Return the contents as lowercase hexadecimal text, two digits per byte.

        Returns:
            The hex text, without separators.
        """
        return self._buf.hex()
