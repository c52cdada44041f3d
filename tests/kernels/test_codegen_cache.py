"""Generated kernel files are named by a hash of their source and of the helper modules they
import (Numba's own cache does not notice a changed helper)."""
from neurodyn.kernels import codegen


def test_kernel_file_name_changes_with_an_imported_helper(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODYN_CACHE", str(tmp_path))
    src = "from neurodyn.kernels.row_adds import add_rows\nPROBE = 1\n"
    first = codegen.load_module(src, "probe")
    assert codegen.load_module(src, "probe") is first  # same source, same helpers: same file
    monkeypatch.setattr(codegen, "_file_bytes", lambda module: b"a changed helper")
    second = codegen.load_module(src, "probe")
    assert second.__name__ != first.__name__ and second.PROBE == 1
    assert len(list(tmp_path.glob("kernels/probe_*.py"))) == 2
