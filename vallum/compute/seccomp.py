"""The system-call filter every bubblewrap sandbox runs under (``bwrap --seccomp FD``).

Why: namespaces and dropped capabilities leave the kernel's whole interface reachable,
and the calls below are how sandbox escapes usually start: a nested user namespace
(which hands the task fresh capabilities over a new set of kernel code), ptrace and
cross-process memory access, the kernel keyring, eBPF, mounts, perf and userfaultfd
(race amplifiers), module and kexec loading, and terminal injection. A task never needs
them. The filter is built with libseccomp through the ``pyseccomp`` binding, refuses
with EPERM (ENOSYS for clone3, whose flags a filter cannot read: libc falls back to
clone, which is checked), and kills calls of a foreign architecture (libseccomp's
default), so the 32-bit entry points cannot route around it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import tempfile

log = logging.getLogger("vallum.compute.seccomp")

CLONE_NEWUSER = 0x10000000
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "setns", "chroot",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl", "quotactl_fd",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "ioperm", "iopl",
    "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "personality",
)


@functools.cache
def program() -> bytes | None:
    """The filter as a BPF program, or None when libseccomp or its binding is missing
    (the job's log then says the filter is not enforced)."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:   # the binding, or libseccomp.so.2 itself
        log.error("no seccomp filter for sandboxes (%s): install libseccomp2 and pyseccomp", exc)
        return None
    f = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(eperm, name)
        except (OSError, ValueError, RuntimeError):
            continue                        # a call this kernel's tables do not know
    f.add_rule(eperm, "unshare", sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        return tmp.read()


def pipe() -> int | None:
    """A readable descriptor holding the program (for ``--seccomp``), or None."""
    prog = program()
    if prog is None:
        return None
    r, w = os.pipe()
    try:
        os.write(w, prog)                   # a few hundred bytes: fits the pipe's buffer
    finally:
        os.close(w)
    return r
