"""SMS-SUBMIT PDUs (3GPP TS 23.040) for AT+CMGS in PDU mode (3GPP TS 27.005).

Text that fits the GSM 7-bit default alphabet goes out as 7-bit (160 characters a part);
anything else, Korean included, as UCS-2 (70 UTF-16 units a part). A longer text is split
into parts carrying a concatenation header (IEI 00: 8-bit reference, part count, part
number), which phones join back into one message.

No library is used: python-gsmmodem-new (last release 2021) and smspdu (2011, Python 2) are
no longer kept; the encoder is small and is tested against published PDUs and decoded back
by smspdudecoder, an independent decoder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# GSM 03.38 default alphabet, by septet value (0x1B is the escape to the extension table).
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D}
_EXTENSION |= {"]": 0x3E, "|": 0x40, "€": 0x65}
_SEPTET = {c: i for i, c in enumerate(_BASIC) if c != "\x1b"}
ESCAPE = 0x1B

GSM7_SINGLE = 160  # septets in one part
GSM7_PART = 153  # septets in a part after the 6-octet concatenation header (7 septets)
UCS2_SINGLE = 70  # UTF-16 units in one part
UCS2_PART = 67
# A message longer than this many parts is cut: a page is a page, not a report.
MAX_PARTS = 8
CUT = "…"

DCS_GSM7 = 0x00
DCS_UCS2 = 0x08
# SMS-SUBMIT, validity period present in relative form; 0x40 more when a header is present
_FIRST_OCTET = 0x11
_UDHI = 0x40
_VALIDITY = 0xAA  # 4 days: a page nobody can receive within that is worthless anyway
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")


class PduError(ValueError):
    """A recipient number that cannot be put into a PDU."""


@dataclass(frozen=True, slots=True)
class Pdu:
    """One part: the hex for AT+CMGS and the length AT+CMGS=<n> wants (without the SMSC)."""

    hex: str
    tpdu_length: int


def is_gsm7(text: str) -> bool:
    return all(c in _SEPTET or c in _EXTENSION for c in text)


def septets(text: str) -> list[int]:
    out: list[int] = []
    for c in text:
        if c in _SEPTET:
            out.append(_SEPTET[c])
        else:
            out += (ESCAPE, _EXTENSION[c])
    return out


def pack7(values: list[int], fill_bits: int = 0) -> bytes:
    """Septets packed into octets, least significant bit first, after `fill_bits` zeros."""
    acc = bits = 0
    out = bytearray()
    bits = fill_bits
    for v in values:
        acc |= (v & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


def address(number: str) -> bytes:
    """TP-DA: digit count, type of address (0x91 international with '+', else 0x81
    unknown/national, as 010... numbers are dialled in Korea), swapped BCD digits."""
    number = number.replace("-", "").replace(" ", "")
    if not _NUMBER.match(number):
        raise PduError(f"not a phone number: {number!r} (digits, optionally a leading +)")
    toa = 0x91 if number.startswith("+") else 0x81
    digits = number.lstrip("+")
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return bytes([len(digits), toa]) + bytes.fromhex(swapped)


def _split_gsm7(text: str) -> list[list[int]]:
    whole = septets(text)
    if len(whole) <= GSM7_SINGLE:
        return [whole]
    parts: list[list[int]] = [[]]
    for c in text:
        coded = septets(c)
        if len(parts[-1]) + len(coded) > GSM7_PART:
            parts.append([])  # an escape pair is never split across parts
        parts[-1] += coded
    return parts


def _split_ucs2(text: str) -> list[bytes]:
    whole = text.encode("utf-16-be")
    if len(whole) <= 2 * UCS2_SINGLE:
        return [whole]
    parts: list[bytes] = [b""]
    for c in text:
        coded = c.encode("utf-16-be")  # 4 bytes for a surrogate pair: never split
        if len(parts[-1]) + len(coded) > 2 * UCS2_PART:
            parts.append(b"")
        parts[-1] += coded
    return parts


def fit(text: str, max_parts: int = MAX_PARTS) -> str:
    """The text, cut (ending in …) where it would need more than `max_parts` parts."""
    if len(_split_gsm7(text) if is_gsm7(text) else _split_ucs2(text)) <= max_parts:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that still fits
        mid = (low + high + 1) // 2
        candidate = text[:mid] + CUT
        n = len(_split_gsm7(candidate) if is_gsm7(candidate) else _split_ucs2(candidate))
        low, high = (mid, high) if n <= max_parts else (low, mid - 1)
    return text[:low] + CUT


def encode(number: str, text: str, reference: int = 0, max_parts: int = MAX_PARTS) -> list[Pdu]:
    """The SMS-SUBMIT PDUs for `text` to `number`, each with "00" in front: the modem takes
    the service centre from the SIM. `reference` (0-255) ties the parts of one message."""
    text = fit(text, max_parts)
    head_tail = address(number)
    gsm7 = is_gsm7(text)
    if gsm7:
        chunks: list[tuple[bytes, int]] = []
        parts7 = _split_gsm7(text)
        for part in parts7:
            if len(parts7) == 1:
                chunks.append((pack7(part), len(part)))
            else:
                # the 6-octet header fills 48 bits: one fill bit puts the text on a septet
                chunks.append((pack7(part, fill_bits=1), len(part) + 7))
        total = len(parts7)
    else:
        parts16 = _split_ucs2(text)
        chunks = [(p, len(p)) for p in parts16]
        total = len(parts16)
    pdus = []
    for index, (data, length) in enumerate(chunks, start=1):
        first = _FIRST_OCTET
        header = b""
        if total > 1:
            first |= _UDHI
            header = bytes([5, 0x00, 3, reference & 0xFF, total, index])
        user_data_length = length if gsm7 else length + len(header)
        tpdu = (
            bytes([first, 0x00])  # TP-MR 0: the modem assigns the message reference
            + head_tail
            + bytes([0x00, DCS_GSM7 if gsm7 else DCS_UCS2, _VALIDITY, user_data_length])
            + header
            + data
        )
        pdus.append(Pdu(hex=("00" + tpdu.hex()).upper(), tpdu_length=len(tpdu)))
    return pdus
