"""Rate-limit counters in files, for a single-machine install without Redis.

Django's file cache (shared by every process on the machine, as the SQLite database is),
with the two changes counters need:

- ``incr`` adds in place, under the file's lock, and keeps the counter's expiry. Django's
  own ``incr`` is a get and a set: two processes can both read 4 and write 5, and the set
  gives the counter the cache's default lifetime (300 s) instead of what is left of its
  window, so a client who paused five minutes would start again from zero.
- No cull on writes. Django's lists the whole folder on every ``set`` (9 ms at 5,000
  files) and, past ``MAX_ENTRIES``, deletes a random third of the files, live counters
  and block markers included. Expired files are deleted by the hourly housekeeping
  instead (``disclosure.ratelimits.delete_expired_counters``).

The file format stays Django's: an expiry, then the compressed value (as ``touch`` reads
and writes it).
"""

import pickle
import time
import zlib

from django.core.cache.backends.filebased import FileBasedCache
from django.core.files import locks


class FileCounterCache(FileBasedCache):
    def incr(self, key, delta=1, version=None):
        try:
            with open(self._key_to_file(key, version), "r+b") as handle:
                locks.lock(handle, locks.LOCK_EX)
                try:
                    expiry = pickle.load(handle)  # noqa: S301  # nosec B301 - our own 0700 folder, as Django reads it
                    if expiry is not None and expiry <= time.time():
                        raise ValueError(f"Key '{key}' not found")
                    value = pickle.loads(zlib.decompress(handle.read())) + delta  # noqa: S301  # nosec B301
                    handle.seek(0)
                    self._write_content(handle, None if expiry is None else expiry - time.time(), value)
                    handle.truncate()
                finally:
                    locks.unlock(handle)
        except (FileNotFoundError, EOFError):
            raise ValueError(f"Key '{key}' not found") from None
        return value

    def _cull(self):
        """Never at random: see the module docstring."""
