"""The host: CPUs with a run queue, and fio jobs whose waits follow the policy core.

A job is fio's thread doing synchronous I/O at depth 1, written as a process in SimPy's
manner: ``Job.run`` is a generator that reads as fio's loop, and it stops at each ``yield``
until its CPU resumes it (its CPU work done, a wakeup, its poll loop seeing the completion).
Each I/O: submit (CPU), then wait as the policy decided, then complete (CPU) and start the
next. The waits (README diagram), one generator each:

    int_wait     block ........ device done -> irq latency -> ISR (CPU) -> wake -> switch in
    cp_wait      poll poll poll poll ... sees the CQ entry at a poll boundary
    hybrid_wait  timer_sleep: arm timer (CPU) -> block ... expiry -> slack -> timer ISR ->
                 wake -> switch in; then cp_wait (a timer that expired while being armed:
                 no block, unless always-yield)

A CPU runs one job at a time. A job leaves the CPU when it blocks or yields, or, while it
busy-polls, when a wakeup sets need_resched (wakeup_preempt) or its slice ends with others
waiting. Interrupt handlers steal time from whatever runs; they are not part of any process.
All times are integer ns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator

from dpas.policy import LAB, DpasPolicy, Io, Op, Policy, Request, Rules
from dpas.sim.device import Device, Draws
from dpas.sim.engine import Engine
from dpas.sim.profile import Profile
from dpas.sim.transfer import BASE_BYTES
from dpas.workload.pacer import NEVER, Pacer


class Cpu:
    """One CPU: the job on it, the jobs waiting for it, and what the current job is doing.

    The current job's process goes on from here: when its CPU work is done, and when its poll
    loop sees the completion. Those events, and a slice's end, carry a token: an interrupt
    handler that stretches the work, or a poll given up, makes the pending event's token stale
    and it does nothing (the engine cannot take an event back)."""

    __slots__ = (
        "id",
        "engine",
        "host",
        "current",
        "runq",
        "busy",
        "end",
        "token",
        "irq_free",
        "polling",
        "poll_start",
        "detect_token",
        "detect_at",
        "run_start",
        "slice_token",
        "sole",
        "on_exec_done",
        "on_detected",
    )

    def __init__(self, cpu_id: int, engine: Engine, profile: Profile) -> None:
        self.id = cpu_id
        self.engine = engine
        self.host = profile.host
        self.current: Job | None = None
        self.runq: deque[Job] = deque()
        #: the current job is using the CPU until ``end`` (not polling, not gone)
        self.busy = False
        self.end = 0
        self.token = 0
        self.irq_free = 0
        self.polling = False
        self.poll_start = 0
        self.detect_token = 0
        self.detect_at = -1
        self.run_start = 0
        self.slice_token = 0
        #: the CPU runs one job only: nothing but that job's own I/O interrupts it
        self.sole = False
        #: the engine's callbacks, bound once: a method bound per event is an allocation
        self.on_exec_done: Callable[[int], None] = self._exec_done
        self.on_detected: Callable[[int], None] = self._detected

    # -- the current job's work -------------------------------------------------------------
    def exec(self, job: Job, dur: int, delay: int = 0) -> None:
        """The current job uses the CPU for ``dur`` ns (after ``delay`` ns of waiting), then
        its process goes on."""
        job.cpu_ns += dur
        self.busy = True
        self.end = self.engine.now + delay + dur
        self.token += 1
        self.engine.at(self.end, self.on_exec_done, self.token)

    def _exec_done(self, token: int) -> None:
        if token != self.token:
            return
        self.busy = False
        job = self.current
        assert job is not None
        job.step()

    def poll(self, job: Job) -> None:
        """The current job busy-polls until its completion is visible; then its process goes
        on with ``job.seen`` set."""
        self.polling = True
        self.poll_start = self.engine.now
        self.detect_at = -1
        if job.visible:
            self._detect_at(self.engine.now + self.host.poll_ns)
        elif self.runq:
            self._arm_slice()

    def completion_visible(self, job: Job) -> None:
        """The job's completion can now be seen by polling: at the poll loop's next turn."""
        if self.current is job and self.polling and self.detect_at < 0:
            poll, start, now = self.host.poll_ns, self.poll_start, self.engine.now
            turns = -(-(now - start) // poll) if poll else 0
            self._detect_at(max(start + turns * poll, now))

    def _detect_at(self, time: int) -> None:
        self.detect_at = time
        self.detect_token += 1
        self.engine.at(time, self.on_detected, self.detect_token)

    def _detected(self, token: int) -> None:
        if token != self.detect_token or not self.polling:
            return
        job = self.current
        assert job is not None
        self._stop_polling(job)
        job.seen = True
        job.step()

    def _stop_polling(self, job: Job) -> None:
        job.cpu_ns += self.engine.now - self.poll_start
        self.polling = False
        self.detect_at = -1
        self.detect_token += 1

    # -- leaving and taking the CPU ---------------------------------------------------------
    def block(self, job: Job) -> None:
        """The current job sleeps: the CPU runs the next runnable job or goes idle.

        schedule() switching the job out costs the job ``block_ns`` of CPU while its I/O is in
        the device; the CPU is busy with it as with an interrupt handler, so what wakes next
        waits for it, and nothing is scheduled for it."""
        job.ctx += 1
        out = self.host.block_ns
        if out:
            job.cpu_ns += out
            now = self.engine.now
            self.irq_free = (now if now > self.irq_free else self.irq_free) + out
        self._dispatch()

    def yield_(self, job: Job) -> bool:
        """schedule() with the job still runnable: others first, if any. True when the job
        left the CPU (its process goes on when it is back), False when it runs on."""
        if not self.runq:
            return False
        job.ctx += 1
        self.runq.append(job)
        self._dispatch()
        return True

    def wake(self, job: Job, then_ns: int = 0) -> None:
        """``job`` is runnable again; its process goes on when it has the CPU, after
        ``then_ns`` of its own work that follows the switch (one event for both)."""
        job.resume_ns = then_ns
        if self.current is None:
            # an interrupt handler that just ran has already woken the CPU
            delay = 0 if self.engine.now <= self.irq_free else self.host.idle_exit_ns
            self._switch_in(job, delay)
            return
        self.runq.append(job)
        if self.polling:
            if self.host.wakeup_preempt:
                self._preempt()
            else:
                self._arm_slice()

    def _dispatch(self) -> None:
        self.current = None
        self.busy = False
        self.polling = False
        self.token += 1
        if self.runq:
            now = self.engine.now
            self._switch_in(self.runq.popleft(), self.irq_free - now if self.irq_free > now else 0)

    def _switch_in(self, job: Job, delay: int) -> None:
        self.current = job
        self.run_start = self.engine.now + delay
        self.slice_token += 1
        extra, job.resume_ns = job.resume_ns, 0
        self.exec(job, self.host.ctx_switch_ns + extra, delay)

    def _preempt(self) -> None:
        job = self.current
        assert job is not None
        self._stop_polling(job)
        job.ctx += 1
        self.runq.append(job)
        self._dispatch()

    def _arm_slice(self) -> None:
        nr = len(self.runq) + 1
        slice_ns = max(self.host.sched_latency_ns // nr, self.host.min_granularity_ns)
        self.slice_token += 1
        self.engine.at(self.run_start + slice_ns, self._slice_end, self.slice_token)

    def _slice_end(self, token: int) -> None:
        if token == self.slice_token and self.polling and self.runq:
            self._preempt()

    # -- interrupts -------------------------------------------------------------------------
    def interrupt(self, cost: int, then: Callable[[], None]) -> None:
        """An interrupt handler of ``cost`` ns runs now (after any before it), then ``then``."""
        now = self.engine.now
        start = max(now, self.irq_free)
        if self.current is None and now > self.irq_free:
            start += self.host.idle_exit_ns
        self.irq_free = start + cost
        job = self.current
        if job is not None and self.busy:
            job.cpu_ns += cost  # accounting charges the handler to whoever runs
            self.end += cost
            self.token += 1
            self.engine.at(self.end, self.on_exec_done, self.token)
        elif job is not None and self.polling and self.detect_at >= 0:
            # a poller's CPU time is its wall time on the CPU, handler included
            self._detect_at(self.detect_at + cost)
        self.engine.at(self.irq_free, then)


class Job:
    """A fio job: one thread, synchronous I/O at depth 1, pinned to one CPU."""

    __slots__ = (
        "id",
        "cpu",
        "engine",
        "device",
        "policy",
        "sim",
        "op",
        "size",
        "proc",
        "io",
        "io_start",
        "visible",
        "seen",
        "by_irq",
        "waiting",
        "found_first",
        "cpu_ns",
        "ctx",
        "latencies",
        "hybrid",
        "timer",
        "submit_ns",
        "reported",
        "slept_at",
        "idle_ns",
        "resume_ns",
        "host",
        "poll_queues",
        "always_yield",
        "group",
        "pacer",
        "think_ns",
        "done_at",
    )

    def __init__(self, job_id: int, cpu: Cpu, sim: Host, op: Op, size: int) -> None:
        self.id = job_id
        self.cpu = cpu
        self.sim = sim
        self.engine = sim.engine
        self.device = sim.device
        self.policy = sim.policy
        self.timer = sim.profile.timer
        self.host = sim.profile.host
        pit = sim.profile.pitfalls
        #: the block layer's hybrid path runs: poll queues, and io_poll_delay >= 0
        self.hybrid = pit.poll_queues and pit.io_poll_delay >= 0
        self.poll_queues = pit.poll_queues
        self.always_yield = pit.always_yield
        self.op = op
        self.size = size
        host = sim.profile.host
        self.submit_ns = host.submit_ns + max(size - BASE_BYTES, 0) * host.kib_ns // 1024
        #: the job's process; it first runs when its CPU switches it in
        self.proc: Generator[None, None, None] = self.run()
        self.io: Io | None = None
        self.io_start = 0
        #: the completion can be seen by polling
        self.visible = False
        #: the poll loop saw it
        self.seen = False
        self.by_irq = False
        self.waiting = False
        self.found_first = False
        self.cpu_ns = 0
        self.ctx = 0
        self.latencies: list[int] = []
        self.reported = False
        self.slept_at = -1
        self.idle_ns = 0
        self.resume_ns = 0
        #: a workload's job: its group's index, when it may issue (None: back to back), its
        #: CPU work between I/Os, and its I/Os' completion times (None: not kept)
        self.group = 0
        self.pacer: Pacer | None = None
        self.think_ns = 0
        self.done_at: list[int] | None = None

    def step(self) -> None:
        """The process goes on, up to its next wait; a finished one returns at once."""
        for _ in self.proc:  # next(): mypyc compiles the loop's step, not the builtin's lookup
            return

    # -- the job's process: fio's loop, and the waits ---------------------------------------
    def run(self) -> Generator[None, None, None]:
        """fio's loop: submit an I/O, wait as the policy decided at submission, complete it and
        start the next, until the run's end (or, with --ios, until enough have completed)."""
        cpu, engine, sim, pacer = self.cpu, self.engine, self.sim, self.pacer
        # CPU work of the last I/O that runs in one stretch with the next submission
        carried = 0
        start = engine.now
        while start < sim.end_ns and (sim.stop_after is None or sim.completed < sim.stop_after):
            if pacer is not None:
                at = pacer.next_at(start)
                if at == NEVER:
                    break
                if at > start:
                    yield from self.idle_until(at)
                    start = engine.now
                pacer.issued(start)
            self._begin(start)
            cpu.exec(self, carried + self.submit_ns)
            yield
            io = self._issue()
            if not io.polled:
                yield from self.int_wait()
            elif self.hybrid:
                yield from self.hybrid_wait(io)
            else:  # classic polling: io_poll_delay -1, or no poll queues
                yield from self.cp_wait(io)
            self._report()
            cost = self._completion_ns()
            done = engine.now + cost
            think = self.think_ns
            if cpu.sole and pacer is None and sim.stop_after is None and done + think < sim.end_ns:
                # A CPU's only job, its own I/O done: no interrupt can come before the next
                # doorbell, so this I/O's end, its think time and the next one's submission are
                # one stretch of CPU time, and one event (--ios runs keep the event: jobs count
                # each other's).
                self._done(done)
                start, carried = done + think, cost + think
                continue
            cpu.exec(self, cost)
            yield
            start, carried = engine.now, 0
            self._done(start)
            if think:
                cpu.exec(self, think)
                yield
                start = engine.now
        cpu.block(self)  # the job is done and never comes back

    def idle_until(self, at: int) -> Iterator[None]:
        """A paced job waits for its next I/O as fio and io_gen do, in a sleep on an hrtimer:
        it blocks, and the timer's interrupt at ``at`` plus the slack wakes it."""
        self.engine.at(at + self.sim.timer_delay(), self._timer_fired)
        self.slept_at = self.engine.now
        self.cpu.block(self)
        yield

    def _issue(self) -> Io:
        """The doorbell: the block layer stamps the request's start here (its statistics
        measure the device's time, not the system calls around it), and DPAS's counters
        take it. The policy decides here whether the I/O is polled."""
        io = self.io = self.policy.on_submit(
            self.cpu.id, _request(self.op, self.size), self.engine.now
        )
        self.by_irq = not (io.polled and self.poll_queues)
        self.device.submit(self)
        return io

    def int_wait(self) -> Iterator[None]:
        """INT, and an I/O that EHP or DPAS (in INT mode) sends to the interrupt: sleep until
        the device's interrupt, whose handler ends the request and wakes the job."""
        self.waiting = True
        self.slept_at = self.engine.now
        self.cpu.block(self)
        yield

    def cp_wait(self, io: Io) -> Generator[None, None, bool]:
        """CP: spin on the completion queue until the poll loop sees the completion (True);
        without poll queues it sees it once the interrupt handler has run.

        need_resched can take the CPU from the spinning job; back on it, the job spins on,
        except under the artifact's rules (reference section 9): an I/O on the hybrid path that
        has not slept returns False, to go through the hybrid path again, evaluating and maybe
        sleeping this time."""
        while True:
            self.cpu.poll(self)
            yield
            if self.seen:
                return True
            if self.sim.rules.resched_reentry and self.hybrid and io.sleep_ns == 0:
                return False

    def hybrid_wait(self, io: Io) -> Iterator[None]:
        """LHP, EHP, PAS, and DPAS in CP, PAS or OL mode: the block layer's hybrid polling.

        At wait start the policy chooses the sleep (DPAS evaluates its mode there, and sleeps
        0 in CP); the job sleeps it on an hrtimer, then spins as CP does. Whether the first poll
        after a sleep finds the completion is PAS's feedback: overslept."""
        while True:
            now = self.engine.now
            sleep = self.policy.on_wait_start(io, now)
            self.sim.tally.wait_started(self.cpu.id)
            if sleep > 0:
                yield from self.timer_sleep(now + sleep)
                now = self.engine.now
                self.found_first = self.visible
            self.policy.on_wait_end(io, now)
            if (yield from self.cp_wait(io)):
                return

    def timer_sleep(self, expire: int) -> Iterator[None]:
        """Sleep until ``expire`` on an hrtimer: arm it (CPU) and block; the timer's interrupt
        at expiry plus the slack wakes the job, which cancels the timer as it comes back.

        A timer that expired while it was being armed is no sleep: the job cancels it and goes
        on, having yielded the CPU first under always_yield (the lab's fix 3)."""
        cpu, tally = self.cpu, self.sim.tally
        cpu.exec(self, self.sim.arm_ns())
        yield
        if expire <= self.engine.now:
            tally.sleeps_skipped += 1
            if self.always_yield and cpu.yield_(self):
                yield
            cpu.exec(self, self.timer.cancel_ns)
            yield
        else:
            tally.sleeps_taken += 1
            self.engine.at(expire + self.sim.timer_delay(), self._timer_fired)
            self.slept_at = self.engine.now
            cpu.block(self)
            yield

    # -- the I/O's bookkeeping --------------------------------------------------------------
    def _begin(self, now: int) -> None:
        """A new I/O starts at ``now``: fio's clock for its latency."""
        self.io_start = now
        self.visible = False
        self.seen = False
        self.found_first = False
        self.reported = False
        self.slept_at = -1
        self.idle_ns = 0

    def _report(self) -> None:
        """The request ends (blk_mq_end_request): the policy's statistics and feedback take
        it before the completion path returns to fio."""
        if not self.reported:
            self.reported = True
            assert self.io is not None
            self.policy.on_complete(self.io, self.engine.now, self.found_first)

    def _completion_ns(self) -> int:
        """The completion path's CPU time. After a sleep it finds its caches cold and its CPU
        in a deeper idle state the longer the sleep was: cold_ns more after cold_full_ns of
        sleep, in proportion before."""
        host = self.host
        cost = host.complete_ns
        if self.idle_ns and host.cold_ns:
            cost += host.cold_ns * min(self.idle_ns, host.cold_full_ns) // host.cold_full_ns
        return cost

    def _done(self, now: int) -> None:
        """fio sees the I/O complete at ``now``."""
        self.latencies.append(now - self.io_start)
        if self.done_at is not None:
            self.done_at.append(now)
        self.sim.completed += 1
        self.sim.last_completion_ns = now

    # -- interrupt context: the device's completion, its interrupt, the timer's -------------
    def device_done(self) -> None:
        if self.by_irq:
            host = self.host
            self.engine.at(self.engine.now + host.irq_latency_ns, self._irq, host.isr_ns)
        else:
            self.visible = True
            self.cpu.completion_visible(self)

    def _irq(self, cost: int) -> None:
        self.cpu.interrupt(cost, self._irq_handled)

    def _irq_handled(self) -> None:
        self.visible = True
        if self.waiting:
            self.waiting = False
            self.idle_ns = self.engine.now - self.slept_at
            self._report()  # the handler ends the request, before the waiter runs
            self.cpu.wake(self)
        else:  # a waiter spinning without poll queues sees it now
            self.cpu.completion_visible(self)

    def _timer_fired(self) -> None:
        self.cpu.interrupt(self.timer.isr_ns, self._timer_wake)

    def _timer_wake(self) -> None:
        self.idle_ns = self.engine.now - self.slept_at
        self.cpu.wake(self, self.timer.cancel_ns)  # switch in, then cancel the timer


_REQUESTS: dict[tuple[Op, int], Request] = {}


def _request(op: Op, size: int) -> Request:
    """One Request per (op, size): requests are immutable, so jobs can share them."""
    request = _REQUESTS.get((op, size))
    if request is None:
        request = _REQUESTS[op, size] = Request(op, size)
    return request


class Tally:
    """Counts the host model keeps while it runs, beyond the jobs' own."""

    def __init__(self, policy: Policy) -> None:
        self.sleeps_taken = 0
        self.sleeps_skipped = 0
        self.max_qd: dict[int, int] = {}
        self._dpas = policy if isinstance(policy, DpasPolicy) else None

    def wait_started(self, cpu: int) -> None:
        """A polled I/O's wait began on ``cpu``: note DPAS's queue depth there."""
        if self._dpas is not None:
            qd = self._dpas.switch_state(cpu).qd
            if qd > self.max_qd.get(cpu, 0):
                self.max_qd[cpu] = qd


class Host:
    """CPUs, jobs and the device of one run, sharing one engine and one policy."""

    def __init__(
        self,
        engine: Engine,
        profile: Profile,
        policy: Policy,
        device: Device,
        arm_draws: Draws,
        jitter_draws: Draws | None,
        end_ns: int,
        tally: Tally,
        rules: Rules = LAB,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.profile = profile
        self.policy = policy
        self.device = device
        self.arm_draws = arm_draws
        self.jitter_draws = jitter_draws
        self.end_ns = end_ns
        self.tally = tally
        self.cpus = [Cpu(i, engine, profile) for i in range(profile.host.cpus)]
        self.jobs: list[Job] = []
        #: with --ios: stop every job once this many I/Os have completed
        self.stop_after: int | None = None
        self.completed = 0
        self.last_completion_ns = 0

    def arm_ns(self) -> int:
        """CPU time to arm one hrtimer, drawn (never negative)."""
        return max(round(self.arm_draws()), 0)

    def timer_delay(self) -> int:
        """Expiry to the timer's interrupt: the slack, and a drawn jitter where there is one."""
        slack = self.profile.timer.slack_ns
        return slack + round(self.jitter_draws()) if self.jitter_draws is not None else slack

    def add_job(self, cpu_id: int, op: Op, size: int) -> Job:
        job = Job(len(self.jobs), self.cpus[cpu_id], self, op, size)
        self.jobs.append(job)
        return job

    def start(self) -> None:
        """Every job is runnable at time 0; each CPU takes its first."""
        for job in self.jobs:
            job.cpu.runq.append(job)
        for cpu in self.cpus:
            cpu.sole = len(cpu.runq) == 1
            if cpu.runq:
                cpu._switch_in(cpu.runq.popleft(), 0)

    def close(self) -> None:
        """Let the finished run go with its last reference, not at some later garbage
        collection (which would charge a later run for freeing this one): the jobs' suspended
        processes, the CPUs, the device's queue and the engine's pending events refer to each
        other, and this breaks those cycles."""
        for job in self.jobs:
            job.proc.close()
        for cpu in self.cpus:
            cpu.current = None
            cpu.runq.clear()
        self.device.waiting.clear()
        self.engine.clear()
        self.jobs = []
