"""The one-line notice while numba first compiles fe2hmm's kernels (``fe2hmm.progress``)."""

import json
import textwrap

import pytest
from conftest import run_python, serial_only

pytestmark = serial_only

NOTICE = "fe2hmm: compiling the numba kernels"

KERNELS = textwrap.dedent(
    """
    import numba
    from fe2hmm.progress import announce_compilation

    announce_compilation()
    announce_compilation()  # idempotent
    source = '''
    import numba

    @numba.njit
    def twice(x):
        return 2 * x

    @numba.njit
    def thrice(x):
        return 3 * x
    '''
    for name in ("fe2hmm.fake_kernels", "someone_else"):
        space = {"__name__": name}
        exec(compile(source, name, "exec"), space)
        space["twice"](1.0), space["twice"](2), space["thrice"](1.0)
        print(name, "done", flush=True)
    """
)


def test_notice_once_per_process_for_fe2hmm_kernels_only():
    """Three compilations of fe2hmm kernels: one notice; another package's kernels: none."""
    out = run_python(["-c", KERNELS], timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(NOTICE) == 1, out.stderr
    assert "fe2hmm.fake_kernels done" in out.stdout
    out = run_python(["-c", KERNELS.replace("fe2hmm.fake_kernels", "other")], timeout=300)
    assert out.returncode == 0 and NOTICE not in out.stderr, out.stderr


@pytest.mark.slow
def test_first_run_announces_compilation_second_run_loads_cache(tmp_path, monkeypatch):
    """A fresh NUMBA_CACHE_DIR: the first `fe2hmm kmc hopping` announces the compilation (once,
    on standard error; the JSON line stays last on standard output), the second is silent."""
    args = ["-m", "fe2hmm", "kmc", "hopping", "--coverage", "0.5", "--temperature", "1",
            "--size", "8", "--steps", "2000", "--replicas", "2", "--json"]  # fmt: skip
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FE2HMM_PROGRESS", raising=False)
    first = run_python(args, timeout=600)
    second = run_python(args, timeout=600)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stderr.count(NOTICE) == 1, first.stderr
    assert len(first.stderr.strip().splitlines()) == 1, first.stderr
    assert NOTICE not in second.stderr, second.stderr
    for out in (first, second):
        assert "tracer_diffusion" in json.loads(out.stdout.strip().splitlines()[-1])
    assert any(tmp_path.rglob("*.nbi"))  # the kernels were cached there
