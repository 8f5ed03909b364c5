"""The `.wandb` reader against real offline runs written by `wandb.init`: records decoded with
wandb's own classes round-trip byte for byte; an unknown format version, a damaged middle or a
chunk of unknown type is refused by name (never read as a torn tail); a torn tail keeps what is
whole; a sync and a bundle of such a file say so instead of carrying a part of it."""

from __future__ import annotations

import struct
import zlib

import pytest

from ftmodel import bundle, sync
from ftmodel.wandb_log import (
    HEADER,
    LogFormatError,
    UnknownVersion,
    history_step,
    read_log_records,
    record_type,
    staged_paths,
    write_log_records,
)
from ftmodel.workspace import Workspace
from tests.engine.test_sync import API_KEY, FAST, make_offline_run
from tests.fake_wandb import FakeWandb


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """One real offline run (40 steps, an artifact), shared: each test works on copies of its file."""
    ws = tmp_path_factory.mktemp("ws")
    make_offline_run(ws, "sft-20260101-000000-aaaa", steps=40, artifact=True)
    (run,) = sync.list_offline_runs(ws)
    return ws, run


def test_records_decode_with_wandbs_classes_and_round_trip(offline, tmp_path):
    ws, run = offline
    header, records = read_log_records(run.wandb_file)
    kinds = [record_type(r) for r in records]
    assert {"run", "history", "summary", "artifact", "exit"} <= set(kinds)
    assert [history_step(r) for r in records if record_type(r) == "history"] == list(range(1, 41))
    staged = staged_paths(records)
    assert staged and all(p.startswith(str((ws / ".wandb" / "data").resolve())) for p in staged), staged
    copy = tmp_path / "copy.wandb"
    write_log_records(copy, header, records)
    assert copy.read_bytes() == run.wandb_file.read_bytes()


def test_an_unknown_format_version_is_refused_by_name(offline, tmp_path):
    _, run = offline
    data = bytearray(run.wandb_file.read_bytes())
    ident, magic, _ = HEADER.unpack(bytes(data[: HEADER.size]))
    data[: HEADER.size] = HEADER.pack(ident, magic, 1)
    future = tmp_path / "run-x.wandb"
    future.write_bytes(bytes(data))
    with pytest.raises(UnknownVersion, match="format version 1 is not one this ftmodel reads"):
        read_log_records(future)
    future.write_bytes(b"SQLite format 3\0" + bytes(data[16:]))
    with pytest.raises(LogFormatError, match="is not a .wandb file"):
        read_log_records(future)


def test_damage_in_the_middle_is_refused_but_a_torn_tail_keeps_what_is_whole(offline, tmp_path):
    _, run = offline
    data = run.wandb_file.read_bytes()
    _, records = read_log_records(run.wandb_file)
    bad = tmp_path / "run-bad.wandb"
    # A flipped byte in the third record: its checksum fails with the rest of the file behind it.
    pos = HEADER.size
    for _ in range(2):
        pos += 7 + struct.unpack_from("<IHB", data, pos)[1]
    flipped = bytearray(data)
    flipped[pos + 7] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(LogFormatError, match=f"checksum does not match at byte {pos}, with .* bytes after it"):
        read_log_records(bad)
    # A chunk of a type this reader does not know (a newer framing), with a valid checksum.
    unknown = bytearray(data)
    length = struct.unpack_from("<IHB", data, pos)[1]
    struct.pack_into("<I", unknown, pos, zlib.crc32(bytes(data[pos + 7 : pos + 7 + length]), zlib.crc32(b"\x09")))
    unknown[pos + 6] = 9
    bad.write_bytes(bytes(unknown))
    with pytest.raises(LogFormatError, match="unknown type 9"):
        read_log_records(bad)
    # A copy cut in the middle of a record (the writer killed, a bundle of a running run): torn tail.
    torn = tmp_path / "run-torn.wandb"
    torn.write_bytes(data[: len(data) - 100])
    _, kept = read_log_records(torn)
    assert 0 < len(kept) < len(records) and kept == records[: len(kept)]
    # The same with zeros where the rest should be (a power cut on a preallocated block).
    torn.write_bytes(data[: len(data) - 100] + b"\0" * 100)
    assert read_log_records(torn)[1] == kept
    # Killed before even the header was out: no record, not an error.
    for size in (0, 4):
        torn.write_bytes(data[:size])
        assert read_log_records(torn) == (data[: HEADER.size], [])


def test_a_sync_and_a_bundle_of_an_unreadable_record_fail_by_name(tmp_path):
    ws = tmp_path / "ws"
    make_offline_run(ws, "sft-20260101-000000-aaaa", steps=3, artifact=True)
    (run,) = sync.list_offline_runs(ws)
    data = bytearray(run.wandb_file.read_bytes())
    data[HEADER.size - 1] = 7  # a format version from the future
    run.wandb_file.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="format version 7 is not one this ftmodel reads"):
        bundle.plan_bundle(ws, [])
    with FakeWandb(api_key=API_KEY) as server:
        env = {"WANDB_BASE_URL": server.url, "WANDB_API_KEY": API_KEY, **FAST}
        (res,) = sync.sync_runs(ws, env={**_clean_env(), **env}, timeout=60)
        assert res.state == "failed" and "format version 7 is not one this ftmodel reads" in res.reason
        assert server.client_requests() == []  # nothing of it was sent
    assert not list((Workspace(ws).wandb_home / "sync-stage").glob("*/*"))


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
