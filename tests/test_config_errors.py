"""Bad input gets one clear error naming the problem and where it is, never a traceback."""
import pytest

from ecosim import EcosimError
from ecosim.cli import main
from ecosim.engine.config import load_config
from ecosim.studies.transmit import TransmitConfig, check


def load(path=None, overrides=()):
    return load_config(TransmitConfig(), path, overrides, checks=check)


def test_defaults_load():
    cfg = load()
    assert cfg.trait.kind == "preference" and cfg.teacher.how == "finetune"


def test_unknown_key_suggests_the_right_one(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("student:\n  stpes: 10\n")
    with pytest.raises(EcosimError) as e:
        load(str(p))
    msg = str(e.value)
    assert str(p) in msg and "student.stpes" in msg and "did you mean 'student.steps'" in msg


def test_wrong_type_names_key_and_value():
    with pytest.raises(EcosimError, match=r"student.steps.*'many'"):
        load(overrides=["student.steps=many"])


def test_logit_student_loads_overrides_and_clears(tmp_path):
    """logit_student: keys of student changed for the logit students, from the file or the command
    line (a key set on an unset section makes it); null clears it; a bad key or value is named."""
    p = tmp_path / "c.yaml"
    p.write_text("logit_student: {mode: full}\n")
    assert load(str(p), ["logit_student.lr=5e-5"]).logit_student == {"mode": "full", "lr": 5e-5}
    assert load(str(p), ["logit_student=null"]).logit_student is None
    assert load(overrides=["logit_student.mode=full"]).logit_student == {"mode": "full"}
    with pytest.raises(EcosimError) as e:
        load(str(p), ["logit_student.lr=fast", "logit_student.stpes=3"])
    msg = str(e.value)
    assert str(p) in msg and "logit_student.lr: Value 'fast'" in msg and "did you mean 'logit_student.steps'?" in msg


def test_every_problem_is_reported_at_once(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seedz: 3\nstudent:\n  lr: fast\n")
    with pytest.raises(EcosimError) as e:
        load(str(p), ["trait.kindd=x"])
    msg = str(e.value)
    assert "seedz" in msg and "student.lr" in msg and "trait.kindd" in msg


def test_semantic_problems_are_reported_together():
    with pytest.raises(EcosimError) as e:
        load(overrides=["trait.target=unicorn", "channel=smoke", "seeds=0"])
    msg = str(e.value)
    assert "unicorn" in msg and "smoke" in msg and "seeds" in msg


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(EcosimError, match="not readable YAML"):
        load(str(bad))
    with pytest.raises(EcosimError, match="not found"):
        load(str(tmp_path / "missing.yaml"))


def test_cli_prints_one_error_line_and_exits_2(tmp_path, capsys):
    assert main(["transmit", "student.stpes=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecosim: error: invalid config") and "Traceback" not in err


def test_cli_missing_base_path(capsys, tmp_path):
    assert main(["transmit", f"base.path={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_unwritable_json_path_fails_before_running(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["transmit", "--json", str(blocker / "sub" / "r.json")]) == 2
    assert "cannot write there" in capsys.readouterr().err
