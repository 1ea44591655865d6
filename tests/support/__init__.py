"""Helpers shared by the tests (and the benchmarks): the sample-warehouse builder, the import contract."""


def python_c(code: str):
    """`python -c code` in the repository root: a __main__ without __spec__ or __file__."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def python_c_prints(code: str, want: str):
    """python_c(code), which must exit 0 and print `want`; its result."""
    out = python_c(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert want in out.stdout, out.stdout + out.stderr[-2000:]
    return out
