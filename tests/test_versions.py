"""versions.json in a run directory: recorded atomically, compared on resume (no models)."""
import json
import platform

import pytest

from ecosim import EcosimError, __version__
from ecosim.store import versions


def test_current_names_every_version():
    v = versions.current()
    assert set(v) == {"ecosim", "torch", "transformers", "peft", "python", "checkpoint_format"}
    assert v["ecosim"] == __version__ and v["python"] == platform.python_version()
    assert v["checkpoint_format"] == versions.CHECKPOINT_FORMAT and isinstance(v["checkpoint_format"], int)
    import torch
    import transformers
    assert v["torch"] == torch.__version__ and v["transformers"] == transformers.__version__


def test_record_then_check_is_quiet(tmp_path):
    v = versions.record(tmp_path)
    assert json.loads((tmp_path / "versions.json").read_text()) == v == versions.current()
    assert [p.name for p in tmp_path.iterdir()] == ["versions.json"]  # no temporary file left
    assert versions.check(tmp_path) == []
    assert versions.check(str(tmp_path)) == []


def test_run_dir_from_before_versions_gives_one_warning(tmp_path):
    lines = versions.check(tmp_path)
    assert len(lines) == 1 and "versions unknown" in lines[0] and str(tmp_path) in lines[0]


def test_unreadable_versions_file_gives_one_warning(tmp_path):
    (tmp_path / "versions.json").write_text("{not json")
    lines = versions.check(tmp_path)
    assert len(lines) == 1 and "versions unknown" in lines[0]


def test_other_library_versions_are_warnings(tmp_path):
    v = versions.record(tmp_path)
    old = dict(v, torch="2.3.0", transformers="5.20.0", ecosim="0.0.1", python="3.9.0")
    (tmp_path / "versions.json").write_text(json.dumps(old))
    lines = versions.check(tmp_path)
    assert len(lines) == 3  # python alone is not worth a warning
    for name, was in [("torch", "2.3.0"), ("transformers", "5.20.0"), ("ecosim", "0.0.1")]:
        line = next(l for l in lines if f"made with {name} " in l)
        assert was in line and str(v[name]) in line and str(tmp_path) in line


def test_another_checkpoint_format_is_an_error(tmp_path, monkeypatch):
    versions.record(tmp_path)
    monkeypatch.setattr(versions, "CHECKPOINT_FORMAT", versions.CHECKPOINT_FORMAT + 1)
    with pytest.raises(EcosimError) as e:
        versions.check(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert f"format {versions.CHECKPOINT_FORMAT - 1}" in msg and f"format {versions.CHECKPOINT_FORMAT}" in msg
    assert "cannot be resumed" in msg and "new run" in msg


def test_missing_checkpoint_format_is_an_error(tmp_path):
    v = versions.current()
    del v["checkpoint_format"]
    (tmp_path / "versions.json").write_text(json.dumps(v))
    with pytest.raises(EcosimError, match="format unknown"):
        versions.check(tmp_path)
