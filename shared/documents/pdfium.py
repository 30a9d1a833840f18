"""One process-wide lock for PDFium, which is not thread-safe.

PDFium keeps global state: two threads using it at once, even on different documents, corrupt
the heap (seen here as "double free or corruption" with two page ranges extracted in parallel).
Every use of pypdfium2 in docgate holds this lock. Text parsing (pdfplumber, pure Python) does
not need it.
"""

from __future__ import annotations

import threading

PDFIUM_LOCK = threading.RLock()
