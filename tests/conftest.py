import os

import pytest
import torch

# Generated kernels go to a per-run cache unless the caller chose one (CI keeps one across tests).
os.environ.setdefault("NEURODYN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "neurodyn"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def f64():
    """Run a test in float64 (tolerances near 1e-10 need it)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def no_cupy(monkeypatch):
    """``import cupy`` fails, as on a machine without it."""
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("no cupy here")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.fixture(scope="package")
def sanitized_run():
    """run(folder, kernel_source, main_source): builds main_source (which includes "k.cu", the
    kernel source) with AddressSanitizer and UBSan stopping on the first error, runs it and returns
    the CompletedProcess; skips the test when there is no compiler or it cannot link them."""
    import subprocess

    from neurodyn.kernels.cuda_host import host_compiler
    cxx = host_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler for the sanitizer build")
    flags = ["-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer", "-ffp-contract=off",
             "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = subprocess.run([cxx, *flags, "-x", "c++", "-", "-o", "/dev/null"], input="int main() { return 0; }",
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{cxx} cannot build with -fsanitize=address,undefined here")

    def run(folder, kernel_source: str, main_source: str) -> subprocess.CompletedProcess:
        (folder / "k.cu").write_text(kernel_source)
        (folder / "main.cpp").write_text(main_source)
        exe = folder / "check"
        r = subprocess.run([cxx, *flags, str(folder / "main.cpp"), "-o", str(exe)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        return subprocess.run([str(exe)], capture_output=True, text=True, cwd=folder,
                              env={"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "PATH": "/usr/bin:/bin"})
    return run
