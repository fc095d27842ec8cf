"""One process per work directory: an advisory lock on the directory itself.

Two processes writing one run's checkpoints and records would interleave
rounds; the second is refused while the first runs. The lock is the kernel's
``flock`` on the directory's file descriptor, so it writes no file and cannot
go stale: the kernel drops it when its process exits, however it ends (a
SIGKILL, a crash, a preempted machine), and the next process takes it.
Processes on other machines that share the directory over NFS see it where
the NFS client maps ``flock`` to byte-range locks (Linux does).
"""

from __future__ import annotations

import os

from jal.errors import JalError

try:
  import fcntl
except ImportError:  # not POSIX: no lock; documented in the README
  fcntl = None


class DirectoryLock:
  """An exclusive lock on one directory, held from `acquire` until `release`.

  Raises (from `acquire`):
    JalError: another process holds the lock (naming its process id where
      ``/proc/locks`` shows it), or the directory cannot be opened.
  """

  def __init__(self, path: str):
    self.path = os.path.abspath(path)
    self._fd: int | None = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self) -> None:
    if self._fd is not None or fcntl is None:
      return
    try:
      fd = os.open(self.path, os.O_RDONLY)
    except OSError as e:
      raise JalError(f'cannot open {self.path}: {e.strerror}; check the --workdir path and '
                     'its permissions') from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(fd)
      os.close(fd)
      raise JalError(f'{self.path} is in use by another jal process{holder}; wait for it to '
                     'finish or stop it, or choose another --workdir') from None
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the last descriptor drops the flock
      self._fd = None

  def __enter__(self) -> 'DirectoryLock':
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def _holder(fd: int) -> str:
  """`` (process N)`` for the process holding a flock on ``fd``'s inode, from
  Linux's ``/proc/locks``; empty where that is unavailable."""
  try:
    stat = os.fstat(fd)
    with open('/proc/locks') as f:
      lines = f.read().splitlines()
  except OSError:
    return ''
  inode = f'{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}'
  for line in lines:
    fields = line.split()
    if 'FLOCK' in fields and fields[-3] == inode:
      pid = fields[-4]
      if pid.isdigit():
        return ' (this process)' if int(pid) == os.getpid() else f' (process {pid})'
  return ''
