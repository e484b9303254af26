"""A quarantine of tens of thousands of paths (each one an --exclude) must not make a command
line the kernel refuses: rsync must still start, skip exactly those paths and ship the rest."""

from __future__ import annotations

from pathlib import Path

from backup.rsync import ARGS_INLINE_MAX, Outcome, run_rsync, spill_excludes
from backup.transfer import exact_pattern, skip_args

SET_ASIDE = 80_000  # about 3 MiB of excludes: E2BIG for one exec on Linux


async def test_tens_of_thousands_of_set_aside_paths_still_ship_the_rest(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "archive").mkdir(parents=True)
    dst.mkdir()
    (src / "minutes.hwp").write_bytes(b"minutes\n")
    odd = "salary\n[county] RESOLVED.hwp"  # a name with a newline, set aside like the rest
    (src / "archive" / odd).write_bytes(b"private\n")
    (src / "archive" / "plan.hwp").write_bytes(b"plan\n")
    aside = [f"archive/private-{i:06d}.hwp" for i in range(SET_ASIDE)] + [f"archive/{odd}"]

    excludes = skip_args(aside)
    args = ["-a", "--exclude=/.sentinel-source", *excludes, "--include=*", f"{src}/", f"{dst}/"]
    assert sum(len(a) + 1 for a in args) > 8 * ARGS_INLINE_MAX
    result = await run_rsync(args)

    assert result.outcome == Outcome.OK, result.error
    assert (dst / "minutes.hwp").read_bytes() == b"minutes\n"
    assert (dst / "archive" / "plan.hwp").read_bytes() == b"plan\n"
    assert not (dst / "archive" / odd).exists()


def test_the_excludes_keep_their_place_among_the_other_rules() -> None:
    run = [f"--exclude={exact_pattern(f'd/f{i}')}" for i in range(40_000)]
    args = ["-a", "--exclude=/keep-first", "--include=/d/", *run, "--exclude=*", "src/", "dst/"]
    spilled, path = spill_excludes(args)
    try:
        assert path is not None
        at = spilled.index(f"--exclude-from={path}")
        assert spilled[at - 1] == "--include=/d/" and spilled[at + 1] == "src/"
        assert "--from0" in spilled
        rules = Path(path).read_bytes().split(b"\0")
        # the whole run, in order, up to the catch-all that closed it
        assert rules[:2] == [b"/d/f0", b"/d/f1"] and rules[-2:] == [b"*", b""]
    finally:
        if path:
            Path(path).unlink()
    assert spill_excludes(["-a", "--exclude=/x", "src/", "dst/"]) == (
        ["-a", "--exclude=/x", "src/", "dst/"],
        None,
    )
