"""gunicorn's sync worker, woken one at a time.

Every sync worker waits for the next connection with select() on the listening socket, and the kernel wakes every
worker waiting there for each connection: one accepts it, the others find nothing, go through their loop and sleep
again (the "thundering herd"). With four workers, that is three wasted wake-ups a request, and a page's code runs in
whichever process won, with its caches cold. Here each worker waits with epoll and registers the listening socket
with EPOLLEXCLUSIVE (Linux 4.5 and later): the kernel wakes one idle worker per connection, the first registered that
is waiting, so light traffic stays on a worker whose caches are warm, and a burst still spreads over all of them.
Measured with `bench/load.py --duration 20 --alone-seconds 20` on two cores (gunicorn, beat and two workers as
deployed; `GUNICORN_CMD_ARGS="-k sync"` for gunicorn's own worker), two runs each, interleaved: the web's CPU a
request 2.20 and 2.31 ms instead of 2.43 and 2.39, and the campaign beside it kept 0.65 and 0.67 of its rate instead
of 0.61 and 0.62. tests/test_web_workers.py counts the wake-ups: 2 a request, not 5.7.

Everything else is gunicorn's SyncWorker: accepting, handling, timeouts and signals. Where epoll or EPOLLEXCLUSIVE
is missing, it waits as SyncWorker does. Given `--threads` above 1, gunicorn runs its threaded worker (gthread)
instead, as it does for its own sync worker (a class name ending in SyncWorker counts as sync): `make run` does.
"""

import os
import select

from gunicorn.workers.sync import SyncWorker

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


class ExclusiveSyncWorker(SyncWorker):
    """SyncWorker whose wait wakes only this worker for a connection no other idle worker is woken for."""

    _poller = None  # the epoll object, once run() has made it
    _waited_on: dict  # file descriptor -> what SyncWorker.wait returns for it (a listener, or the pipe's fd)

    def run(self) -> None:
        """Register the listeners (exclusively) and the wake-up pipe with an epoll object of this process, then run
        as SyncWorker does."""
        if EXCLUSIVE:
            self._poller = select.epoll()
            self._waited_on = {listener.fileno(): listener for listener in self.sockets}
            for descriptor in self._waited_on:
                self._poller.register(descriptor, select.EPOLLIN | EXCLUSIVE)
            self._poller.register(self.PIPE[0], select.EPOLLIN)
            self._waited_on[self.PIPE[0]] = self.PIPE[0]
        super().run()

    def wait(self, timeout: float):
        """What SyncWorker.wait returns (the ready listeners and the wake-up pipe), waiting with epoll."""
        if self._poller is None:
            return super().wait(timeout)
        self.notify()
        ready = [self._waited_on[fd] for fd, _ in self._poller.poll(timeout)]
        if self.PIPE[0] in ready:
            os.read(self.PIPE[0], 1)
        return ready
