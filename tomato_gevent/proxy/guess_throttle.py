"""Password guessing, per client address (--auth-file). Pure: the caller passes the clock.

    turn(client, credentials, now) -> 0.0 | seconds | None
        before checking credentials from client: check at once, wait that long first, or
        refuse without checking (its turn is more than MAX_WAIT_SECONDS away: close)
    failed(client, user, now) -> bool      a wrong login; True: log it now (the client's first
                                           of its report interval), False: counted for report()
    succeeded(client, credentials)         right credentials from a client with failures:
                                           they skip its queue from now on
    report(now) -> [(client, count, users)]   the failures not logged yet, per client, once
                                           per REPORT_SECONDS; forgets quiet clients

Strategy. FREE_FAILURES failures per address cost nothing (typos). After them, every login
attempt from that address takes a turn: turns are STEP_SECONDS apart, doubling with each
further failure up to MAX_STEP_SECONDS, and are handed out across connections, so opening
more connections buys no more guesses (one keep-alive connection made 11 177 guesses/s).
The check waits for the turn too: were only the refusal delayed, a right guess would still
be answered at once. Credentials that already succeeded from that address (a browser
repeats its Proxy-Authorization on every request) skip the queue, so a user behind the
same NAT as a guesser, or who mistyped, is not slowed once logged in. An address quiet for
FORGET_SECONDS starts afresh; at most MAX_CLIENTS addresses are kept (full: the one quiet
longest is forgotten). The log gets the first failure of each interval at once (the user
tried named), the rest as one line per client per interval.
"""
# -- implementation constants ----------------------------------------------------
FREE_FAILURES = 3
STEP_SECONDS = 1.0
MAX_STEP_SECONDS = 16.0
MAX_WAIT_SECONDS = 30.0
REPORT_SECONDS = 60.0
FORGET_SECONDS = 600.0
MAX_CLIENTS = 4096
MAX_USERS_SHOWN = 5
MAX_GOOD_CREDENTIALS = 8


class _Client:
    __slots__ = ("failures", "next_turn", "last_failure", "interval_start", "unreported", "users", "good")

    def __init__(self, now):
        self.failures = 0
        self.next_turn = now
        self.last_failure = now
        self.interval_start = None      # the report interval of the failures counted below
        self.unreported = 0
        self.users = []
        self.good = set()


class GuessThrottle:
    def __init__(self, free=FREE_FAILURES, step=STEP_SECONDS, max_step=MAX_STEP_SECONDS,
                 max_wait=MAX_WAIT_SECONDS, report_every=REPORT_SECONDS, forget_after=FORGET_SECONDS,
                 max_clients=MAX_CLIENTS):
        self.free, self.step, self.max_step, self.max_wait = free, step, max_step, max_wait
        self.report_every, self.forget_after, self.max_clients = report_every, forget_after, max_clients
        self.clients = {}               # ip -> _Client: only addresses with failures (the hot path tests it)

    def _step(self, failures):
        return min(self.max_step, self.step * 2 ** max(0, failures - self.free))

    def penalised(self, client):
        state = self.clients.get(client)
        return state is not None and state.failures >= self.free

    def turn(self, client, credentials, now):
        state = self.clients.get(client)
        if state is None or state.failures < self.free or hash(credentials) in state.good:
            return 0.0
        start = max(now, state.next_turn)
        wait = start - now
        if wait > self.max_wait:
            return None
        state.next_turn = start + self._step(state.failures)
        return wait

    def failed(self, client, user, now):
        state = self.clients.get(client)
        if state is not None and now - state.last_failure > self.forget_after:
            state = None
        if state is None:
            if len(self.clients) >= self.max_clients:
                quiet = min(self.clients, key=lambda ip: self.clients[ip].last_failure)
                del self.clients[quiet]
            state = self.clients[client] = _Client(now)
        state.failures += 1
        state.last_failure = now
        if state.failures >= self.free:
            state.next_turn = max(state.next_turn, now + self._step(state.failures))
        if state.interval_start is None or (now - state.interval_start >= self.report_every
                                            and not state.unreported):
            state.interval_start = now
            return True
        state.unreported += 1           # (past the interval with some unreported: report() is due)
        if user is not None and user not in state.users and len(state.users) < MAX_USERS_SHOWN:
            state.users.append(user)
        return False

    def succeeded(self, client, credentials):
        state = self.clients.get(client)
        if state is not None and len(state.good) < MAX_GOOD_CREDENTIALS:
            state.good.add(hash(credentials))

    def report(self, now):
        lines = []
        for client, state in list(self.clients.items()):
            if state.unreported and now - state.interval_start >= self.report_every:
                lines.append((client, state.unreported, tuple(state.users)))
                state.unreported, state.users, state.interval_start = 0, [], now
            elif not state.unreported and now - state.last_failure > self.forget_after:
                del self.clients[client]
        return lines
