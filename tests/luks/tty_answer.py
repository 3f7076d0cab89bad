#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""tty_answer.py TRANSCRIPT ANSWERS_FILE -- CMD...: runs CMD on a new pseudo-terminal (its
controlling terminal, so /dev/tty is the pty), answers each prompt that ends in ": " with the next
line of ANSWERS_FILE (none left: answers nothing), writes everything the terminal showed to
TRANSCRIPT and exits with CMD's exit code. Bounded: 60 s in all."""
import os, pty, select, sys, time

transcript, answers_file, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
answers = open(answers_file).read().splitlines()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
shown = b""
pending = b""
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if not r:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    shown += data
    pending += data
    if pending.rstrip(b"\r\n").endswith(b": ") or pending.endswith(b": "):
        pending = b""
        if answers:
            os.write(fd, answers.pop(0).encode() + b"\n")
_, status = os.waitpid(pid, 0)
open(transcript, "wb").write(shown)
sys.exit(os.waitstatus_to_exitcode(status))
