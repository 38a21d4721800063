"""Make the installed lava-nc 0.10.0 importable on Python 3.11.

Python 3.11 rejects mutable dataclass defaults that are instances of unhashable classes.
``lava/magma/compiler/var_model.py`` declares eight fields as ``x: ByteEncoder = ByteEncoder()``;
this script rewrites them to ``field(default_factory=ByteEncoder)``.  It is idempotent and refuses
to touch a file whose content it does not recognise.

Usage: ``python tools/patch_lava.py`` (exit 0 when patched or already patched, 2 otherwise).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

BROKEN = re.compile(r"^(\s+\w+: ByteEncoder) = ByteEncoder\(\)\s*$", re.MULTILINE)
FIXED = re.compile(r"^\s+\w+: ByteEncoder = field\(default_factory=ByteEncoder\)\s*$", re.MULTILINE)
EXPECTED_FIELDS = 8
IMPORT_OLD = "from dataclasses import dataclass, InitVar\n"
IMPORT_NEW = "from dataclasses import dataclass, InitVar, field\n"


def locate() -> Path:
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("patch_lava: lava-nc is not installed in this environment")
    return Path(list(spec.submodule_search_locations)[0]) / "magma" / "compiler" / "var_model.py"


def patch_text(text: str) -> str | None:
    """Return the patched text, or None when ``text`` is already patched."""
    broken, fixed = len(BROKEN.findall(text)), len(FIXED.findall(text))
    if broken == 0 and fixed == EXPECTED_FIELDS and IMPORT_NEW in text:
        return None
    if broken != EXPECTED_FIELDS or fixed != 0 or IMPORT_OLD not in text:
        raise ValueError(
            f"unrecognised var_model.py: {broken} broken and {fixed} fixed ByteEncoder fields "
            f"(expected {EXPECTED_FIELDS} broken); is this lava-nc 0.10.0?"
        )
    text = text.replace(IMPORT_OLD, IMPORT_NEW, 1)
    return BROKEN.sub(r"\1 = field(default_factory=ByteEncoder)", text)


def main() -> int:
    path = locate()
    text = path.read_text()
    try:
        new = patch_text(text)
    except ValueError as exc:
        print(f"patch_lava: {path}: {exc}", file=sys.stderr)
        return 2
    if new is None:
        print(f"patch_lava: {path} already patched")
        return 0
    path.write_text(new)
    digest = hashlib.sha256(new.encode()).hexdigest()[:12]
    print(f"patch_lava: patched {path} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
