"""The argument checks of ``fe2hmm.checks`` shared by the command line and the demos: the
argparse ``type=`` factories and the writability probe (nothing created)."""

import argparse
import os

import pytest

from fe2hmm.checks import check_writable, integer, integer_list, real, real_list


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (integer(), "3", 3),
        (integer(0, 10), "0", 0),
        (integer(0, 10), "10", 10),
        (integer(None, None), "-5", -5),
        (real(), "-1.5e3", -1500.0),
        (real(0.0, 1.0), "0", 0.0),
        (real(0.0, 1.0, open_max=True), "0.5", 0.5),
        (integer_list(1), "8, 16,32", [8, 16, 32]),
        (real_list(0.0, open_min=True), "0.1,2", [0.1, 2.0]),
    ],
)
def test_factories_accept(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (integer(), "0", "expected an integer >= 1, got '0'"),
        (integer(), "1.5", "expected an integer >= 1, got '1.5'"),
        (integer(0, 10), "11", "expected an integer in [0, 10], got '11'"),
        (integer(None, 5), "6", "expected an integer <= 5, got '6'"),
        (integer(None, None), "x", "expected an integer, got 'x'"),
        (
            integer(1, 2**63 - 1),
            "1" + "0" * 30,
            "expected an integer in [1, 2**63 - 1], got '100000000000000000000000000...'",
        ),
        (integer(0, 2**64), "-1", "expected an integer in [0, 2**64], got '-1'"),
        (real(), "nan", "expected a finite number, got 'nan'"),
        (real(), "inf", "expected a finite number, got 'inf'"),
        (real(), "abc", "expected a finite number, got 'abc'"),
        (real(0.0, open_min=True), "0", "expected a finite number > 0, got '0'"),
        (real(0.0, 0.5, open_min=True), "0.6", "expected a finite number in (0, 0.5], got '0.6'"),
        (real(0.0, 1.0, open_max=True), "1", "expected a finite number in [0, 1), got '1'"),
        (integer_list(1, 4), "1,5", "expected comma-separated integers in [1, 4], got '1,5'"),
        (integer_list(1), "abc", "expected comma-separated integers >= 1, got 'abc'"),
        (integer_list(1), "1,,2", "expected comma-separated integers >= 1, got '1,,2'"),
        (real_list(), "1,nan", "expected comma-separated finite numbers, got '1,nan'"),
    ],
)
def test_factories_refuse_with_range_and_value(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)
    assert str(err.value) == message


def test_parser_names_the_argument(capsys):
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--n", type=integer(1))
    with pytest.raises(SystemExit):
        parser.parse_args(["--n", "0"])
    assert "argument --n: expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_check_writable_file_creates_nothing(tmp_path):
    target = tmp_path / "cell.xdmf"
    assert check_writable(target, ".h5") == target
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="does not exist"):
        check_writable(tmp_path / "missing" / "cell.xdmf")
    with pytest.raises(ValueError, match="is a folder"):
        check_writable(tmp_path)


def test_check_writable_folder_creates_nothing(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    assert check_writable(target, folder=True) == target
    assert check_writable(tmp_path, folder=True) == tmp_path
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^'file' is not a folder"):
        check_writable("file", folder=True)
    with pytest.raises(ValueError, match="is inside .*, which is not a folder"):
        check_writable(tmp_path / "file" / "out", folder=True)


@pytest.mark.skipif(os.name != "posix" or not os.path.isdir("/proc"), reason="needs /proc")
def test_check_writable_folder_refuses_proc():
    with pytest.raises(ValueError, match="'/proc' is not writable"):
        check_writable("/proc/x", folder=True)


@pytest.mark.parametrize("value", [0, 0.0, -1.0, float("nan"), float("inf"), True, "1", None])
def test_positive_refuses_in_one_line_naming_the_argument(value):
    from fe2hmm.checks import positive

    with pytest.raises(ValueError, match=r"^viscosity must be a finite number > 0, got "):
        positive("viscosity", value)


def test_positive_returns_a_float():
    import numpy as np

    from fe2hmm.checks import positive

    assert positive("x", 2) == 2.0 and type(positive("x", np.float32(0.5))) is float
