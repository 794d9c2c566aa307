"""Forget secrets passed in the environment (TOMATO_LOCAL_PASSWORD, ...) once they are read.

A variable left in os.environ reaches every child (--up/--down hooks, ip(8), their
children) and /proc/PID/environ. Removing it takes two steps:
  1. os.environ.pop(name): Python's copy and the C environ (unsetenv) lose it, so
     children no longer inherit it;
  2. the initial copy: /proc/PID/environ is not the C environ but the bytes the kernel
     put on the stack at exec (between env_start and env_end of /proc/PID/stat), which
     unsetenv does not touch. Those bytes are overwritten with NULs through
     /proc/self/mem (a process may always write its own memory); the entry then reads
     as empty strings. Nothing points at them any more after step 1.
What remains: the parent that started us (a shell, systemd) still holds the value,
and the Python string of the password stays in this process's memory, readable by
root or a debugger of this user, like any key in use.

initial_entries(block, names) is the pure part (which bytes to blank);
forget_environment(names) does both steps and says whether the initial copy is clean.
"""
import os

PROC_STAT = "/proc/self/stat"
PROC_MEM = "/proc/self/mem"
ENV_START_FIELD = 50            # proc(5): env_start, env_end are fields 50 and 51 (Linux 3.5+)


def initial_entries(block, names):
    """(offset, length) of every NAME=value entry in an environment block (NUL-separated
    bytes) whose NAME is one of names (str)."""
    wanted = {name.encode() for name in names}
    spans = []
    offset = 0
    for entry in block.split(b"\0"):
        if entry.partition(b"=")[0] in wanted and b"=" in entry:
            spans.append((offset, len(entry)))
        offset += len(entry) + 1
    return spans


def _environment_block_range(stat_text):
    """(env_start, env_end) from the text of /proc/PID/stat; fields counted after the
    command name, which may itself hold spaces and parentheses."""
    fields = stat_text[stat_text.rindex(b")") + 2:].split()
    first = ENV_START_FIELD - 3         # fields 1 and 2 (pid, comm) come before the ')'
    return int(fields[first]), int(fields[first + 1])


def forget_environment(names, environ=os.environ, stat_path=PROC_STAT, mem_path=PROC_MEM):
    """Remove names from the environment and from the process's initial environment block.

    Returns True when no entry of names is left in the initial block (also when there was
    none), False when it could not be blanked (no /proc, a kernel that refuses writes to
    /proc/self/mem): then /proc/PID/environ, readable by root and this user, still shows it.
    """
    for name in names:
        environ.pop(name, None)
    try:
        with open(stat_path, "rb") as f:
            start, end = _environment_block_range(f.read())
        with open(mem_path, "r+b", buffering=0) as mem:
            mem.seek(start)
            block = mem.read(end - start)
            for offset, length in initial_entries(block, names):
                mem.seek(start + offset)
                mem.write(bytes(length))
            mem.seek(start)
            return not initial_entries(mem.read(end - start), names)
    except (OSError, ValueError, IndexError):
        return False


__all__ = ["forget_environment", "initial_entries"]
