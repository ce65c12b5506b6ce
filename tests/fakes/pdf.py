"""Minimal hand-written PDFs: a one-page text PDF (readable by pypdf), a text-less one, and a
hostile one (a small file whose content stream inflates to megabytes of text operators)."""

from __future__ import annotations

import zlib


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF showing ``lines`` in Helvetica (no lines: a "scanned", text-less
    page)."""
    ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return one_page("\n".join(ops).encode("latin-1"), b"")


def build_hostile_pdf(inflated_mb: int = 10) -> bytes:
    """A valid one-page PDF of about 3 KB per inflated MB whose Flate content stream inflates to
    ``inflated_mb`` MB of text-showing operators: pypdf spends about 12 s of CPU per MB on it
    (measured on a 2-vCPU x86_64 machine), the way a hostile 120 KB resume cost 8 s and +130 MB."""
    operator = b"(Lorem ipsum dolor sit amet) Tj T*\n"
    count = inflated_mb * 1024 * 1024 // len(operator)
    stream = b"BT /F1 11 Tf 14 TL 50 780 Td\n" + operator * count + b"ET"
    return one_page(zlib.compress(stream, 9), b" /Filter /FlateDecode")


def one_page(stream: bytes, filters: bytes) -> bytes:
    """A one-page PDF around ``stream`` (``filters``: extra stream-dictionary entries)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + filters
        + b" >>\nstream\n"
        + stream
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


RESUME_LINES = [
    "Alex Student",
    "BSc Computer Science, Example University, 2025.",
    "Research assistant in the robotics lab: built a SLAM pipeline in Python and C++.",
    "Published a workshop paper on sensor fusion for small drones.",
    "Skills: PyTorch, ROS, probability, technical writing.",
]
