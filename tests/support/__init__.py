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
