"""A small MessagePack codec: what crosses the wasmpool boundary.

Pure Python, so that it runs inside a component (the `msgpack` package's
native extension cannot). It covers the whole format: nil, bool, int (to
64 bits), float, str, bin, array, map and ext.

- `None`, `bool`, `int`, `float`, `str` map to their MessagePack types;
  `bytes`, `bytearray` and `memoryview` to bin; lists and tuples to arrays;
  dicts to maps (in their order).
- A shared object handle (`wasmpool_guest.objects`) encodes as its ext 87.
- With ``tuples=True`` (a Python host's call of a Python function, which
  gets back what it sent), a tuple packs as an ext 88 holding its items
  packed as an array; an ext 88 always unpacks to a tuple.
- Other ext values decode to, and encode from, `ExtType(code, data)`.
- A map key that decodes to a list becomes a tuple, so that it is hashable.
"""

import struct
from collections import namedtuple

__all__ = ["ExtType", "PackError", "UnpackError", "packb", "unpackb"]

#: A MessagePack ext value other than a wasmpool handle.
ExtType = namedtuple("ExtType", "code data")

#: The deepest nesting of arrays and maps either side accepts.
MAX_DEPTH = 512

#: The ext type of a tuple kept a tuple (``'X'``).
TUPLE_EXT = 88


class PackError(ValueError):
    """A value has no MessagePack form (an unsupported type, an integer
    outside 64 bits, nesting too deep)."""


class UnpackError(ValueError):
    """Bytes are not one whole MessagePack value."""


# Set by `wasmpool_guest.objects`: ext code -> function(data) -> object, and
# the type whose instances encode through their `_ext()` method.
_ext_decoders = {}
_ext_encodable = ()


def packb(value, tuples=False):
    """The MessagePack bytes of `value`; with `tuples`, each tuple as an
    ext 88 rather than an array.

    Raises `PackError` if it has none."""
    if type(value) is int:
        # The commonest result, without the walk.
        return _int_bytes(value)
    out = bytearray()
    _pack(value, out, 0, tuples)
    return bytes(out)


def _pack(value, out, depth, tuples=False):
    if depth > MAX_DEPTH:
        raise PackError(f"nested deeper than {MAX_DEPTH} arrays and maps")
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        out += _int_bytes(value)
    elif isinstance(value, float):
        out.append(0xCB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        else:
            _pack_len(out, n, 0xD9, 0xDA, 0xDB, "a string")
        out += data
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        _pack_len(out, len(data), 0xC4, 0xC5, 0xC6, "a byte string")
        out += data
    elif tuples and isinstance(value, tuple):
        items = bytearray()
        _pack(list(value), items, depth, tuples)
        _pack_ext(TUPLE_EXT, bytes(items), out)
    elif isinstance(value, (list, tuple)):
        n = len(value)
        if n < 16:
            out.append(0x90 | n)
        else:
            _pack_len(out, n, None, 0xDC, 0xDD, "an array")
        for item in value:
            _pack(item, out, depth + 1, tuples)
    elif isinstance(value, dict):
        n = len(value)
        if n < 16:
            out.append(0x80 | n)
        else:
            _pack_len(out, n, None, 0xDE, 0xDF, "a map")
        for key, item in value.items():
            _pack(key, out, depth + 1, tuples)
            _pack(item, out, depth + 1, tuples)
    elif isinstance(value, ExtType) or isinstance(value, _ext_encodable):
        code, data = value if isinstance(value, ExtType) else value._ext()
        _pack_ext(code, bytes(data), out)
    else:
        raise PackError(
            f"a value of type {type(value).__name__} has no MessagePack form "
            "(use None, bool, int, float, str, bytes, list, tuple or dict)"
        )


#: The one-byte forms of the integers -32..127, by value + 32.
_FIXINTS = [bytes((value & 0xFF,)) for value in range(-32, 128)]

_U8, _U16, _U32, _U64 = (struct.Struct(f">B{fmt}").pack for fmt in "BHIQ")
_I8, _I16, _I32, _I64 = (struct.Struct(f">B{fmt}").pack for fmt in "bhiq")


def _int_bytes(value):
    """The shortest MessagePack form of the integer `value`."""
    if -32 <= value < 0x80:
        return _FIXINTS[value + 32]
    if value > 0:
        bits = value.bit_length()
        if bits <= 8:
            return _U8(0xCC, value)
        if bits <= 16:
            return _U16(0xCD, value)
        if bits <= 32:
            return _U32(0xCE, value)
        if bits <= 64:
            return _U64(0xCF, value)
    else:
        # A negative value fits in k signed bits when ~value fits in k - 1.
        bits = (~value).bit_length()
        if bits < 8:
            return _I8(0xD0, value)
        if bits < 16:
            return _I16(0xD1, value)
        if bits < 32:
            return _I32(0xD2, value)
        if bits < 64:
            return _I64(0xD3, value)
    raise PackError(f"the integer {value} does not fit in 64 bits")


def _pack_len(out, n, code8, code16, code32, what):
    if code8 is not None and n < 1 << 8:
        out.append(code8)
        out.append(n)
    elif n < 1 << 16:
        out.append(code16)
        out += struct.pack(">H", n)
    elif n < 1 << 32:
        out.append(code32)
        out += struct.pack(">I", n)
    else:
        raise PackError(f"{what} of {n} items is too long for MessagePack")


def _pack_ext(code, data, out):
    if not -128 <= code < 128:
        raise PackError(f"ext type {code} is not between -128 and 127")
    n = len(data)
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(n)
    if fixed is not None:
        out.append(fixed)
    else:
        _pack_len(out, n, 0xC7, 0xC8, 0xC9, "an ext value")
    out += struct.pack(">b", code)
    out += data


def unpackb(data):
    """The one value `data` holds.

    Raises `UnpackError` if it is not exactly one MessagePack value."""
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size and 0x90 <= data[0] < 0xA0:
        # A short array, as a task's arguments are; its small integers and
        # numbers (the commonest arguments) decoded here, in one go.
        value = []
        end = 1
        for _ in range(data[0] & 0x0F):
            b = data[end] if end < size else 0xC1
            if b < 0x80:
                value.append(b)
                end += 1
                continue
            number = _NUMBERS.get(b)
            if number is not None and end + 1 + number[1] <= size:
                value.append(number[0](data, end + 1)[0])
                end += 1 + number[1]
                continue
            # Anything else, and what is cut short, as everywhere else.
            item, end = _unpack(data, end, 1)
            value.append(item)
    else:
        value, end = _unpack(data, 0, 0)
    if end != size:
        raise UnpackError(f"{size - end} bytes follow the value")
    return value


def _take(data, pos, n):
    end = pos + n
    if end > len(data):
        raise UnpackError("the data ends in the middle of a value")
    return data[pos:end], end


def _unpack(data, pos, depth):
    if depth > MAX_DEPTH:
        raise UnpackError(f"nested deeper than {MAX_DEPTH} arrays and maps")
    if pos >= len(data):
        raise UnpackError("the data ends where a value should start")
    b = data[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b < 0xC0:
        raw, pos = _take(data, pos, b & 0x1F)
        return _text(raw), pos
    if 0x90 <= b < 0xA0:
        return _array(data, pos, b & 0x0F, depth)
    if 0x80 <= b < 0x90:
        return _map(data, pos, b & 0x0F, depth)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    number = _NUMBERS.get(b)
    if number is not None:
        unpack, end = number
        end += pos
        if end > len(data):
            raise UnpackError("the data ends in the middle of a value")
        return unpack(data, pos)[0], end
    if b in _LENGTHS:
        kind, fmt = _LENGTHS[b]
        raw, pos = _take(data, pos, struct.calcsize(fmt))
        n = struct.unpack(fmt, raw)[0]
        if kind == "array":
            return _array(data, pos, n, depth)
        if kind == "map":
            return _map(data, pos, n, depth)
        if kind == "ext":
            code, pos = _take(data, pos, 1)
            raw, pos = _take(data, pos, n)
            return _ext(struct.unpack(">b", code)[0], raw, depth), pos
        raw, pos = _take(data, pos, n)
        return (_text(raw) if kind == "str" else raw), pos
    if 0xD4 <= b <= 0xD8:
        code, pos = _take(data, pos, 1)
        raw, pos = _take(data, pos, 1 << (b - 0xD4))
        return _ext(struct.unpack(">b", code)[0], raw, depth), pos
    raise UnpackError(f"0x{b:02x} is not a MessagePack type byte")


#: Type byte -> (unpack_from of the number after it, its size).
_NUMBERS = {
    code: (struct.Struct(fmt).unpack_from, struct.calcsize(fmt))
    for code, fmt in {
        0xCA: ">f", 0xCB: ">d",
        0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
        0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
    }.items()
}

_LENGTHS = {
    0xC4: ("bin", ">B"), 0xC5: ("bin", ">H"), 0xC6: ("bin", ">I"),
    0xC7: ("ext", ">B"), 0xC8: ("ext", ">H"), 0xC9: ("ext", ">I"),
    0xD9: ("str", ">B"), 0xDA: ("str", ">H"), 0xDB: ("str", ">I"),
    0xDC: ("array", ">H"), 0xDD: ("array", ">I"),
    0xDE: ("map", ">H"), 0xDF: ("map", ">I"),
}


def _text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnpackError(f"a string is not UTF-8: {err}") from None


def _array(data, pos, n, depth):
    # Each item takes at least a byte: a bogus count fails before it allocates.
    if n > len(data) - pos:
        raise UnpackError("an array claims more items than the data holds")
    items = []
    for _ in range(n):
        item, pos = _unpack(data, pos, depth + 1)
        items.append(item)
    return items, pos


def _map(data, pos, n, depth):
    if 2 * n > len(data) - pos:
        raise UnpackError("a map claims more entries than the data holds")
    entries = {}
    for _ in range(n):
        key, pos = _unpack(data, pos, depth + 1)
        value, pos = _unpack(data, pos, depth + 1)
        if isinstance(key, list):
            key = _frozen(key)
        try:
            entries[key] = value
        except TypeError:
            raise UnpackError(f"a map key of type {type(key).__name__} is not hashable") from None
    return entries, pos


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _ext(code, raw, depth):
    if code == TUPLE_EXT:
        items, end = _unpack(raw, 0, depth + 1)
        if end != len(raw) or not isinstance(items, list):
            raise UnpackError("a tuple's ext does not hold an array")
        return tuple(items)
    decode = _ext_decoders.get(code)
    if decode is not None:
        return decode(raw)
    return ExtType(code, raw)
