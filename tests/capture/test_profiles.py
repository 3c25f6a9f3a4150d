import pytest

from fxcap.capture.profiles import OD3, LA2A, DeviceProfile, get_profile, load_profile_toml
from fxcap.errors import DeviceNotFoundError


def test_normalize_round_trip_and_range():
    drive = OD3.knob("drive")
    assert drive.normalize(0) == -1.0
    assert drive.normalize(10) == 1.0
    assert drive.normalize(5) == 0.0
    assert drive.denormalize(drive.normalize(7.3)) == pytest.approx(7.3)
    with pytest.raises(ValueError, match="0..10"):
        drive.validate(11)


def test_switch_normalization():
    mode = LA2A.knob("mode")
    assert mode.normalize("compress") == -1.0
    assert mode.normalize("limit") == 1.0
    assert mode.denormalize(0.9) == "limit"
    with pytest.raises(ValueError, match="compress, limit"):
        mode.validate("fast")


def test_lookup_is_forgiving_and_errors_name_the_choices():
    assert get_profile("od3") is OD3
    assert LA2A.knob("Peak-Reduction").name == "peak_reduction"
    with pytest.raises(DeviceNotFoundError, match="OD-3"):
        get_profile("tubescreamer")
    with pytest.raises(ValueError, match="level, tone, drive"):
        OD3.knob("fuzz")


def test_profile_dict_round_trip():
    assert DeviceProfile.from_dict(LA2A.to_dict()) == LA2A


def test_user_profile_from_toml(tmp_path):
    path = tmp_path / "fuzz.toml"
    path.write_text(
        'name = "Fuzz"\nkind = "fuzz"\n[[knobs]]\nname = "sustain"\nmin = 0\nmax = 10\ndefault = 3\n'
        'midi_cc = 20\n[[knobs]]\nname = "mode"\nvalues = ["soft", "hard"]\n'
    )
    profile = load_profile_toml(path)
    assert profile.knob_names == ["sustain", "mode"]
    assert profile.knob("sustain").midi_cc == 20
    assert profile.complete({"mode": "hard"}) == {"sustain": 3.0, "mode": "hard"}
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(DeviceNotFoundError, match="not valid TOML"):
        load_profile_toml(bad)


def test_clock_position():
    drive = OD3.knob("drive")
    assert drive.clock_position(0) == "about 7 o'clock"
    assert drive.clock_position(5) == "about 12 o'clock"
    assert drive.clock_position(10) == "about 5 o'clock"
