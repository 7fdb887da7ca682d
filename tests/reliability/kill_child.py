"""The training process that tests/reliability/test_kill_resume.py kills: ``python kill_child.py ARGS`` runs
``pgrad ARGS`` (the CLI, in this process).

With ``PGRAD_TEST_DIE_AT_WRITE=K:FRAC`` it dies inside its K-th write of checkpoints/last.pt (1 is the step-0
write of a fresh run): the temp file is complete and fsynced, it is cut to FRAC of its length (a crash at that
byte offset of the write; FRAC=1 is a crash between the write and the rename), the SHA-256 of the last.pt then on
disk (the previous checkpoint, or "" if none) goes to the file named by ``PGRAD_TEST_RECORD``, and the process
SIGKILLs itself before the rename.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path

import pgrad.run
from pgrad.cli import main


def install_crash(spec: str, record: Path) -> None:
    k_s, frac_s = spec.split(":")
    k, frac = int(k_s), float(frac_s)
    writes = 0

    def die_in_write(tmp: Path, path: Path) -> None:
        nonlocal writes
        if path.name != "last.pt":
            return
        writes += 1
        if writes < k:
            return
        size = tmp.stat().st_size
        with open(tmp, "r+b") as f:
            f.truncate(int(size * frac))
        record.write_text(hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "")
        os.kill(os.getpid(), signal.SIGKILL)

    pgrad.run.before_commit = die_in_write


if __name__ == "__main__":
    if os.environ.get("PGRAD_TEST_DIE_AT_WRITE"):
        install_crash(os.environ["PGRAD_TEST_DIE_AT_WRITE"], Path(os.environ["PGRAD_TEST_RECORD"]))
    sys.exit(main(sys.argv[1:]))
