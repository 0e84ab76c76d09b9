"""Statistics buckets: bucket = ddir + 2*ilog2(sectors) (reference §2, §5.1)."""

from __future__ import annotations

import pytest

from dpas.policy import NO_BUCKET, Bucketing, Op, Request, bucket_of


@pytest.mark.parametrize(
    ("op", "size", "bucket"),
    [
        (Op.READ, 512, 0),
        (Op.WRITE, 512, 1),
        (Op.READ, 4096, 6),
        (Op.WRITE, 4096, 7),
        (Op.READ, 8192, 8),
        (Op.READ, 12288, 8),  # 24 sectors: ilog2 rounds down
        (Op.READ, 65536, 14),
        (Op.WRITE, 65536, 15),
        (Op.READ, 131072, 14),  # 256 sectors would be bucket 16: capped to the last pair
        (Op.WRITE, 1 << 20, 15),
        (Op.READ, 0, NO_BUCKET),
        (Op.WRITE, 256, NO_BUCKET),  # zero whole sectors
    ],
)
def test_bucket(op: Op, size: int, bucket: int) -> None:
    assert Bucketing().bucket(Request(op, size)) == bucket


def test_stats_sectors_bug_needs_queue_statistics() -> None:
    r = Request(Op.READ, 4096)
    assert Bucketing(stats_sectors_bug=True).bucket(r) == NO_BUCKET
    assert Bucketing(stats_sectors_bug=True, queue_stats=True).bucket(r) == 6


def test_bucket_of_write_with_one_sector() -> None:
    assert bucket_of(Op.WRITE, 1) == 1


@pytest.mark.parametrize("text", ["R", "r", "read", "randread", " READ "])
def test_op_parse_read(text: str) -> None:
    assert Op.parse(text) is Op.READ


@pytest.mark.parametrize("text", ["W", "w", "write", "WRITE", "randwrite"])
def test_op_parse_write(text: str) -> None:
    assert Op.parse(text) is Op.WRITE


def test_op_parse_refuses_others() -> None:
    with pytest.raises(ValueError, match="expected read"):
        Op.parse("trim")
    with pytest.raises(ValueError, match="size"):
        Request(Op.READ, -1)
