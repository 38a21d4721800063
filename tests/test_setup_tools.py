"""The Lava 3.11 patch is idempotent, exact, and refuses files it does not recognise."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import patch_lava  # noqa: E402


def installed_text() -> str:
    return patch_lava.locate().read_text()


def unpatched(text: str) -> str:
    text = text.replace(patch_lava.IMPORT_NEW, patch_lava.IMPORT_OLD, 1)
    return re.sub(r"= field\(default_factory=ByteEncoder\)", "= ByteEncoder()", text)


def test_installed_lava_is_patched_and_imports():
    assert patch_lava.patch_text(installed_text()) is None
    assert importlib.util.find_spec("lava.magma.compiler.var_model") is not None


def test_patch_restores_the_installed_file_exactly():
    original = unpatched(installed_text())
    assert original.count("= ByteEncoder()") == 8
    assert patch_lava.patch_text(original) == installed_text()


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace("= ByteEncoder()", "= ByteEncoder(1)", 1),
    lambda t: t.replace(patch_lava.IMPORT_OLD, "import dataclasses\n"),
    lambda t: "print('hello')\n",
])
def test_unrecognised_files_are_refused(mangle):
    with pytest.raises(ValueError, match="unrecognised var_model.py"):
        patch_lava.patch_text(mangle(unpatched(installed_text())))
