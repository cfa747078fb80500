"""The core through its Python bindings, in a real CPython process.

Run by `scripts/test.sh`, which builds the library, generates `linli_ffi.py`
next to it and puts that folder on `sys.path` (LINLI_PY_BINDINGS).
"""

import os
import sys

sys.path.insert(0, os.environ["LINLI_PY_BINDINGS"])

import pytest  # noqa: E402
import linli_ffi as linli  # noqa: E402


def test_a_coordinator_sets_up_a_space(tmp_path):
    app = linli.LinliApp.open(str(tmp_path / "phone"))
    assert len(app.device_id()) == 64
    space = app.create_space("幸福里社区", "王老师")
    app.add_unit(space, "u1", "3栋", "1单元", "502", 8975)
    [info] = app.spaces()
    assert info.space_id == space and info.name == "幸福里社区"
    [me] = app.members(space, 0, 50)
    assert me.name == "王老师"
    assert linli.Role.ADMIN in me.roles
    [unit] = app.units(space, 0, 50)
    assert (unit.building, unit.room, unit.area_centi) == ("3栋", "502", 8975)
    invite = app.create_invite(space, "李阿姨", [linli.Role.RESIDENT])
    assert len(invite.code) <= 80
    names = sorted(m.name for m in app.members(space, 0, 50))
    assert names == ["李阿姨", "王老师"]


def test_the_store_survives_reopening(tmp_path):
    path = str(tmp_path / "phone")
    app = linli.LinliApp.open(path)
    space = app.create_space("s", "me")
    device = app.device_id()
    del app
    again = linli.LinliApp.open(path)
    assert again.device_id() == device
    assert [s.space_id for s in again.spaces()] == [space]


def test_bad_input_gives_the_public_error_and_changes_nothing(tmp_path):
    app = linli.LinliApp.open(str(tmp_path / "phone"))
    space = app.create_space("s", "me")
    with pytest.raises(linli.LinliError.InvalidInput):
        app.add_unit(space, "u1", "1", "1", "101", 0)
    with pytest.raises(linli.LinliError.InvalidInput):
        app.create_space("   ", "me")
    with pytest.raises(linli.LinliError.NotFound):
        app.create_invite("0" * 32, "x", [linli.Role.RESIDENT])
    with pytest.raises(linli.LinliError.InvalidInput):
        app.set_role(space, "no-such-member", linli.Role.VOLUNTEER, True)
    assert app.units(space, 0, 50) == []
