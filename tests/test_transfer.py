"""A command's size: its bytes cross the busiest flash channel it touches and the host link,
streamed, so the slower path sets the pace (dpas.sim.transfer, docs/profiles.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import run_dpas
from hypothesis import given
from hypothesis import strategies as st

from dpas.sim import load
from dpas.sim.profile import ProfileError, parse
from dpas.sim.transfer import busiest_channel_bytes, transfer_ns

P41 = load("skhynix-p41").device
ZET = load("samsung-983zet").device


@pytest.mark.parametrize(
    ("size", "stripe", "channels", "expected"),
    [
        (4096, 4096, 8, 4096),  # one stripe, one die
        (131072, 196608, 8, 131072),  # inside one stripe: all of it on one channel
        (131072, 8192, 8, 16384),  # 16 stripes over 8 channels: two each
        (131072, 4096, 7, 20480),  # 32 stripes over 7 channels: the busiest takes 5
        (12288, 8192, 8, 8192),  # 2 stripes (the second partly used) on 2 channels
    ],
)
def test_the_busiest_channel_carries(size: int, stripe: int, channels: int, expected: int) -> None:
    assert busiest_channel_bytes(size, stripe, channels) == expected


def test_up_to_4_kib_costs_nothing_more() -> None:
    for size in (512, 2048, 4096):
        assert transfer_ns(P41, size) == 0.0


def test_a_read_held_on_one_die_goes_at_its_channel_s_pace() -> None:
    """The P41 profile: 128 KiB sits on one die (a 192 KiB stripe), its channel 1600 MB/s is
    slower than the 7000 MB/s link: 128 KiB costs (131072 - 4096) B / 1.6 B/ns more."""
    assert transfer_ns(P41, 131072) == pytest.approx((131072 - 4096) / 1.6)


def test_a_read_spread_over_every_channel_goes_at_the_link_s_pace() -> None:
    """The 983 ZET profile: 128 KiB over 8 channels of 425 MB/s carries 16 KiB each (38.6 us),
    the 3400 MB/s link 131072 B (38.6 us): the two meet; 4 KiB's own 9.6 us on its channel is
    inside read_ns."""
    link = 131072 * 1000 / 3400
    assert transfer_ns(ZET, 131072) == pytest.approx(max(link, 16384 * 1000 / 425) - 4096e3 / 425)


def test_without_a_layout_a_larger_read_pays_the_link_only() -> None:
    """channels 0 (qemu-lab, or a profile that does not say): size beyond 4 KiB / bandwidth."""
    lab = load("qemu-lab").device
    assert lab.channels == 0
    assert transfer_ns(lab, 131072) == (131072 - 4096) * (1000 / lab.bandwidth_mb_s)


@given(
    st.integers(1, 64),
    st.sampled_from([4096, 8192, 16384, 65536, 196608]),
    st.floats(50, 20000),
    st.integers(4096, 1 << 20),
    st.integers(0, 1 << 20),
)
def test_a_larger_read_never_costs_less(
    channels: int, stripe: int, channel_mb_s: float, size: int, more: int
) -> None:
    device = replace(P41, channels=channels, stripe_bytes=stripe, channel_mb_s=channel_mb_s)
    assert transfer_ns(device, size + more) >= transfer_ns(device, size) >= 0


def test_channels_need_a_channel_rate() -> None:
    text = (load_text := _text("skhynix-p41")).replace("channel_mb_s = 1600.0", "")
    assert load_text != text
    with pytest.raises(ProfileError, match=r"channels = 8 needs channel_mb_s above 0"):
        parse(text, "x.toml")


@pytest.mark.parametrize(
    ("support", "message"),
    [
        ("bs_max = 0\njobs_max = 1\nsources = 'x'", r"\[support\] bs_max = 0: expected a whole"),
        ("bs_max = 4096\njobs_max = 1.5\nsources = 'x'", r"jobs_max = 1.5: expected a whole"),
        ("bs_max = 4096\njobs_max = 1\nsources = ''", r"sources = '': expected the sources"),
        ("bs_max = 4096\njobs_max = 1\nsources = 'x'\nfoo = 1", r"\[support\] has no key 'foo'"),
        ("bs_max = 4096\nsources = 'x'", r"jobs_max = None: expected a whole"),
    ],
)
def test_support_is_checked(support: str, message: str) -> None:
    text = _text("skhynix-p41").split("\n[support]\n")[0] + "\n[support]\n" + support + "\n"
    with pytest.raises(ProfileError, match=message):
        parse(text, "x.toml")


def _text(name: str) -> str:
    from importlib import resources

    return (resources.files("dpas.sim") / "profiles" / f"{name}.toml").read_text()


def test_support_says_what_is_beyond_it() -> None:
    support = load("samsung-983zet").support
    assert support is not None
    assert support.gap(4096, 1) == ""
    assert support.gap(131072, 1) == ""
    assert support.gap(262144, 2) == "bs 256k > 128k, 2 jobs > 1"


def test_bench_marks_the_runs_beyond_the_profile_s_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The 983 ZET's sources cover one job: its 2-job row is marked and footnoted, and
    results.json keeps the profile's support."""
    out = run_dpas(
        "bench", "CP", "--profile", "samsung-983zet", "--jobs", "1,2", "--runtime", "0.02",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["1", "2†"]
    assert "† beyond what the profile's sources cover (2 jobs > 1)" in out.stdout
    import json

    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["profile"]["support"]["jobs_max"] == 1


def test_bench_within_the_sources_has_no_mark(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = run_dpas(
        "bench", "CP", "--profile", "skhynix-p41", "--jobs", "1,20", "--bs", "131072",
        "--runtime", "0.02", "--out", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "†" not in out.stdout


def test_validate_marks_the_cells_beyond_the_profile_s_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A user's 983 ZET table at 2 jobs: the profile's sources cover one, so the cell says why
    it is beyond them (validate.json, the screen); the 1-job cell says nothing."""
    import json

    table = tmp_path / "zet.json"
    table.write_text(
        json.dumps({"devices": {"samsung_983zet": {"kiops": {"1": {"CP": 65}, "2": {"CP": 130}}}}})
    )
    out = run_dpas(
        "validate", "--profile", "samsung-983zet", "--against", str(table), "--runtime", "0.02",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    entries = json.loads((tmp_path / "out" / "validate.json").read_text())["profiles"]
    cells = {c["jobs"]: c["beyond"] for c in entries[-1]["cells"]}
    assert cells == {1: "", 2: "2 jobs > 1"}
    assert "† here: 2 jobs > 1" in out.stdout
