"""``--fix``: the source edits for the artifact's DPAS 5.18 tree, on a small tree of the test's
own holding the places each fix edits (written here in the artifact's shape: CI has no copy of
the artifact), and through a build:DIR build that compiles what the fixes changed."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_dpas
from test_vm_build_dir import digest, kernel_tree

from dpas.vm import build, fixes
from dpas.vm.build import build_dir
from dpas.vm.fixes import FIXES, NAMES, apply_fixes, parse_fixes, unfixed
from dpas.vm.kernel import VmError
from dpas.vm.kernels import parse_kernel

BLK_MQ = """static int bucket_of(const struct request *rq)
{
\tint ddir, sectors;

\tddir = rq_data_dir(rq);
\tsectors = blk_rq_stats_sectors(rq);
\treturn ddir + 2 * ilog2(sectors);
}

static void sleep_a_while(struct hrtimer_sleeper hs, enum hrtimer_mode mode)
{
\tdo {
\t\tset_current_state(TASK_UNINTERRUPTIBLE);
\t\thrtimer_sleeper_start_expires(&hs, mode);
\t\tif (hs.task)
\t\t\tio_schedule();
\t\thrtimer_cancel(&hs.timer);
\t} while (hs.task && !signal_pending(current));
}

static int __init init_switches(void)
{
\tswitches = __alloc_percpu(num_online_cpus(), __alignof__(struct blk_switch));
\treturn 0;
}
"""
STORE = """static ssize_t {name}_store(struct request_queue *q, const char *page, size_t count)
{{
\tint val = 0;

\tif (val == 1 && q->poll_stat){{
\t\tif (q->poll_stat)
\t\t\tblk_stat_remove_callback(q, q->poll_cb);
\t\tblk_stat_free_callback(q->poll_cb);
\t}}
\tq->{name} = val;
\treturn count;
}}
"""
BLK_SYSFS = STORE.format(name="pas_enabled") + "\n" + STORE.format(name="ehp_enabled")


def dpas_tree(root: Path) -> Path:
    """A tree holding every place the fixes edit, as the artifact's does."""
    (root / "block").mkdir(parents=True, exist_ok=True)
    (root / "block" / "blk-mq.c").write_text(BLK_MQ)
    (root / "block" / "blk-sysfs.c").write_text(BLK_SYSFS)
    return root


def test_fix_names_parse_in_one_order() -> None:
    assert parse_fixes("all") == NAMES == ("alloc", "stats", "buckets", "yield")
    assert parse_fixes("yield,alloc") == ("alloc", "yield")
    assert parse_fixes("stats, stats") == ("stats",)
    for bad in ("", "alloc,", "everything", "all,alloc", "ALLOC"):
        with pytest.raises(VmError, match=r"^--fix .*: expected all or a comma-separated list"):
            parse_fixes(bad)


def test_each_fix_edits_its_places_once(tmp_path: Path) -> None:
    tree = dpas_tree(tmp_path)
    assert [f.name for f in unfixed(tree)] == list(NAMES)
    said = apply_fixes(tree, NAMES)
    assert said == [
        "--fix alloc: block/blk-mq.c edited (1 place(s))",
        "--fix stats: block/blk-sysfs.c edited (2 place(s))",
        "--fix buckets: block/blk-mq.c edited (1 place(s))",
        "--fix yield: block/blk-mq.c edited (1 place(s))",
    ]
    mq = (tree / "block" / "blk-mq.c").read_text()
    sysfs = (tree / "block" / "blk-sysfs.c").read_text()
    assert "__alloc_percpu(sizeof(struct blk_switch), __alignof__(struct blk_switch));" in mq
    assert "\tsectors = blk_rq_sectors(rq);" in mq and "blk_rq_stats_sectors" not in mq
    assert re.search(r"start_expires\(&hs, mode\);\n\t\tio_schedule\(\);", mq)
    assert "if (hs.task)\n" not in mq
    assert "blk_stat_free_callback" not in sysfs and "blk_stat_remove_callback" not in sysfs
    assert sysfs.count("q->pas_enabled = val;") == 1 and sysfs.count("return count;") == 2
    assert unfixed(tree) == []
    # again: nothing is edited twice
    before = digest(tree)
    assert apply_fixes(tree, NAMES) == [f"--fix {f.name}: already in {f.path}" for f in FIXES]
    assert digest(tree) == before


def test_only_the_named_fixes_are_made(tmp_path: Path) -> None:
    tree = dpas_tree(tmp_path)
    apply_fixes(tree, ("stats",))
    assert [f.name for f in unfixed(tree)] == ["alloc", "buckets", "yield"]
    assert (tree / "block" / "blk-mq.c").read_text() == BLK_MQ


@pytest.mark.parametrize(
    ("name", "path", "text"),
    [
        ("alloc", "block/blk-mq.c", BLK_MQ.replace("num_online_cpus()", "nr_cpu_ids")),
        ("stats", "block/blk-sysfs.c", STORE.format(name="pas_enabled")),  # one place of two
        ("yield", "block/blk-mq.c", BLK_MQ.replace("io_schedule();", "schedule();")),
    ],
)
def test_a_place_not_found_is_refused_in_one_line(
    tmp_path: Path, name: str, path: str, text: str
) -> None:
    tree = dpas_tree(tmp_path)
    (tree / path).write_text(text)
    with pytest.raises(VmError) as err:
        apply_fixes(tree, (name,))
    message = str(err.value)
    assert message.startswith(f"--fix {name}: {path} holds ") and "\n" not in message
    assert "the artifact's DPAS 5.18 tree" in message


def test_a_tree_without_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VmError, match=r"^--fix buckets: block/blk-mq.c cannot be read"):
        apply_fixes(tmp_path, ("buckets",))


def test_fix_is_only_for_a_build_dir(tmp_path: Path) -> None:
    assert parse_kernel(f"build:{tmp_path}", fixes=("alloc",)).fixes == ("alloc",)
    for spec in ("debian", "build:7.2"):
        with pytest.raises(VmError, match=r"^--fix is for --kernel build:DIR"):
            parse_kernel(spec, fixes=("alloc",))


def test_a_build_with_fixes_compiles_the_fixed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build's own compile step sees the fixed sources; the user's tree keeps its bugs,
    and the unfixed build stays cached beside the fixed one."""
    monkeypatch.setattr(build, "missing_packages", lambda: [])
    monkeypatch.setattr(build, "TREE_GB", 0.01)
    compiled = tmp_path / "compiled.c"
    tree = kernel_tree(
        tmp_path / "user", tmp_path / "builds", compile_=f"cat block/*.c > {compiled}"
    )
    dpas_tree(tree)
    before = digest(tree)
    plain = build_dir(tree, (), tmp_path / "cache")
    assert "blk_rq_stats_sectors" in compiled.read_text()
    said: list[str] = []
    fixed = build_dir(tree, (), tmp_path / "cache", said.append, fixes=NAMES)
    assert fixed.image != plain.image
    text = compiled.read_text()
    assert text.count(fixes.MARK) == 5 and "blk_stat_free_callback" not in text
    assert "--fix stats: block/blk-sysfs.c edited (2 place(s))" in said
    assert digest(tree) == before and len(unfixed(tree)) == 4
    assert build_dir(tree, (), tmp_path / "cache") == plain  # both kept
    assert build_dir(tree, (), tmp_path / "cache", fixes=("alloc",)).image not in (
        plain.image,
        fixed.image,
    )


def test_the_cli_refuses_a_bad_fix_before_anything_runs(tmp_path: Path) -> None:
    out = run_dpas("vm", "bench", "INT", "--kernel", "debian", "--fix", "alloc")
    assert out.returncode == 2 and out.stderr.strip().startswith("dpas: error: --fix is for")
    out = run_dpas("vm", "bench", "INT", "--kernel", f"build:{tmp_path}", "--fix", "nope")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "dpas: error: --fix nope: expected all or a comma-separated list of "
        "alloc, stats, buckets, yield"
    )


def test_a_dpas_tree_built_without_its_fixes_is_warned_about(tmp_path: Path) -> None:
    from dpas.vm.guest import GuestRun
    from dpas.vm.runner import VmConfig, dpas_kernel_warnings

    tree = kernel_tree(tmp_path / "user", tmp_path / "builds")
    dpas_tree(tree)

    def warned(cpus: int, names: tuple[str, ...] = ()) -> list[str]:
        config = VmConfig(GuestRun(cpus=cpus), f"build:{tree}", fixes=names)
        lines = dpas_kernel_warnings(config, "5.18.0-rc6-dpas-fast26")
        assert all(line.startswith(f"warning: {tree} holds a DPAS bug --fix ") for line in lines)
        return [re.findall(r"--fix (\w+) fixes", line)[0] for line in lines]

    assert warned(2) == list(NAMES)
    assert warned(8) == ["stats", "buckets", "yield"]  # 8 vCPUs survive the allocation
    assert warned(2, ("alloc", "yield")) == ["stats", "buckets"]
    assert warned(2, NAMES) == []
    deb = tmp_path / "linux-image-5.18.0-dpas_5.18.0-1_amd64.deb"
    deb.write_bytes(b"")
    lab = VmConfig(GuestRun(cpus=2), str(deb))
    (line,) = dpas_kernel_warnings(lab, "5.18.0-dpas")
    assert "looks like the lab's DPAS kernel" in line and "--cpus 8" in line
    assert dpas_kernel_warnings(replace(lab, run=GuestRun(cpus=8)), "5.18.0-dpas") == []
    assert dpas_kernel_warnings(lab, "6.1.0-56-amd64") == []
