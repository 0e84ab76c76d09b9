"""The host: CPUs with a run queue, and fio jobs whose waits follow the policy core.

A job is fio's thread doing synchronous I/O at depth 1. Each I/O: submit (CPU), then wait
as the policy decides, then complete (CPU) and start the next. The waits (README diagram):

    INT     block ........ device done -> irq latency -> ISR (CPU) -> wake -> switch in
    CP      poll poll poll poll ... sees the CQ entry at a poll boundary
    hybrid  arm timer (CPU) -> block ... expiry -> slack -> timer ISR -> wake -> switch in
            -> poll ... (a timer that expired while being armed: no block, unless always-yield)

A CPU runs one job at a time. A job leaves the CPU when it blocks or yields, or, while it
busy-polls, when a wakeup sets need_resched (wakeup_preempt) or its slice ends with others
waiting. Interrupt handlers steal time from whatever runs. All times are integer ns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from dpas.policy import LAB, DpasPolicy, Io, Op, Policy, Request, Rules
from dpas.sim.device import BASE_BYTES, Device, Draws
from dpas.sim.engine import Engine
from dpas.sim.profile import Profile


class Cpu:
    """One CPU: the job on it, the jobs waiting for it, and what the current job is doing."""

    __slots__ = (
        "id",
        "engine",
        "host",
        "current",
        "runq",
        "cont",
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
    )

    def __init__(self, cpu_id: int, engine: Engine, profile: Profile) -> None:
        self.id = cpu_id
        self.engine = engine
        self.host = profile.host
        self.current: Job | None = None
        self.runq: deque[Job] = deque()
        self.cont: Callable[[], None] | None = None
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

    # -- the current job's work -------------------------------------------------------------
    def exec(self, job: Job, dur: int, cont: Callable[[], None], delay: int = 0) -> None:
        """The current job uses the CPU for ``dur`` ns (after ``delay`` ns of waiting)."""
        job.cpu_ns += dur
        self.cont = cont
        self.end = self.engine.now + delay + dur
        self.token += 1
        self.engine.at(self.end, self._exec_done, self.token)

    def _exec_done(self, token: int) -> None:
        if token != self.token:
            return
        cont, self.cont = self.cont, None
        assert cont is not None
        cont()

    def poll(self, job: Job) -> None:
        """The current job busy-polls until its completion is visible; then job.poll_found()."""
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
        self.engine.at(time, self._detected, self.detect_token)

    def _detected(self, token: int) -> None:
        if token != self.detect_token or not self.polling:
            return
        job = self.current
        assert job is not None
        self._stop_polling(job)
        job.poll_found()

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

    def yield_(self, job: Job, cont: Callable[[], None]) -> None:
        """schedule() with the job still runnable: others first, if any."""
        if not self.runq:
            cont()
            return
        job.ctx += 1
        job.resume = cont
        self.runq.append(job)
        self._dispatch()

    def wake(self, job: Job, cont: Callable[[], None], then_ns: int = 0) -> None:
        """``job`` is runnable again and will run ``cont`` when it has the CPU, after
        ``then_ns`` of its own work that follows the switch (one event for both)."""
        job.resume = cont
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
        self.cont = None
        self.polling = False
        self.token += 1
        if self.runq:
            now = self.engine.now
            self._switch_in(self.runq.popleft(), self.irq_free - now if self.irq_free > now else 0)

    def _switch_in(self, job: Job, delay: int) -> None:
        self.current = job
        self.run_start = self.engine.now + delay
        self.slice_token += 1
        resume = job.resume
        assert resume is not None
        extra, job.resume_ns = job.resume_ns, 0
        self.exec(job, self.host.ctx_switch_ns + extra, resume, delay)

    def _preempt(self) -> None:
        job = self.current
        assert job is not None
        self._stop_polling(job)
        job.ctx += 1
        job.resume = job.resume_poll
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
        if job is not None and self.cont is not None:
            job.cpu_ns += cost  # accounting charges the handler to whoever runs
            self.end += cost
            self.token += 1
            self.engine.at(self.end, self._exec_done, self.token)
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
        "resume",
        "io",
        "io_start",
        "visible",
        "by_irq",
        "waiting",
        "found_first",
        "expire",
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
        self.hybrid = pit.poll_queues and pit.io_poll_delay >= 0
        self.poll_queues = pit.poll_queues
        self.always_yield = pit.always_yield
        self.op = op
        self.size = size
        host = sim.profile.host
        self.submit_ns = host.submit_ns + max(size - BASE_BYTES, 0) * host.kib_ns // 1024
        self.resume: Callable[[], None] | None = self.next_io
        self.io: Io | None = None
        self.io_start = 0
        self.visible = False
        self.by_irq = False
        self.waiting = False
        self.found_first = False
        self.expire = 0
        self.cpu_ns = 0
        self.ctx = 0
        self.latencies: list[int] = []
        self.reported = False
        self.slept_at = -1
        self.idle_ns = 0
        self.resume_ns = 0

    def next_io(self) -> None:
        now = self.engine.now
        sim = self.sim
        if now >= sim.end_ns or (sim.stop_after is not None and sim.completed >= sim.stop_after):
            self.cpu.block(self)  # the job is done and never comes back
            return
        self._begin(now)
        self.cpu.exec(self, self.submit_ns, self._issue)

    def _begin(self, now: int) -> None:
        """A new I/O starts at ``now``: fio's clock for its latency."""
        self.io_start = now
        self.visible = False
        self.found_first = False
        self.reported = False
        self.slept_at = -1
        self.idle_ns = 0

    def _issue(self) -> None:
        """The doorbell: the block layer stamps the request's start here (its statistics
        measure the device's time, not the system calls around it), and DPAS's counters
        take it."""
        io = self.io = self.policy.on_submit(
            self.cpu.id, _request(self.op, self.size), self.engine.now
        )
        self.by_irq = not (io.polled and self.poll_queues)
        self.device.submit(self)
        if not io.polled:
            self.waiting = True
            self.slept_at = self.engine.now
            self.cpu.block(self)
            return
        if not self.hybrid:  # classic polling: io_poll_delay -1, or no poll queues
            self.cpu.poll(self)
            return
        self._wait(io)

    def _wait(self, io: Io) -> None:
        """The hybrid path: the policy's sleep, if any, then polling."""
        now = self.engine.now
        sleep = self.policy.on_wait_start(io, now)
        self.sim.tally.wait_started(self.cpu.id)
        if sleep <= 0:
            self.policy.on_wait_end(io, now)
            self.cpu.poll(self)
            return
        self.expire = now + sleep
        self.cpu.exec(self, self.sim.arm_ns(), self._armed)

    def _armed(self) -> None:
        if self.expire <= self.engine.now:  # expired while it was being armed
            self.sim.tally.sleeps_skipped += 1
            if self.always_yield:
                self.cpu.yield_(self, self._woke)
            else:
                self._woke()
            return
        self.sim.tally.sleeps_taken += 1
        self.engine.at(self.expire + self.sim.timer_delay(), self._timer_fired)
        self.slept_at = self.engine.now
        self.cpu.block(self)

    def _timer_fired(self) -> None:
        self.cpu.interrupt(self.timer.isr_ns, self._timer_wake)

    def _timer_wake(self) -> None:
        self.idle_ns = self.engine.now - self.slept_at
        self.cpu.wake(self, self._first_poll, self.timer.cancel_ns)  # switch in, cancel

    def _woke(self) -> None:
        """Back on the CPU after the sleep: cancel the timer, then the first poll decides
        over or under."""
        self.cpu.exec(self, self.timer.cancel_ns, self._first_poll)

    def _first_poll(self) -> None:
        assert self.io is not None
        self.policy.on_wait_end(self.io, self.engine.now)
        self.found_first = self.visible
        self.cpu.poll(self)

    def resume_poll(self) -> None:
        """Back on the CPU after giving it up on need_resched while polling. An I/O that has
        not slept goes through the hybrid path again under the artifact's rules, evaluating
        and maybe sleeping this time (reference section 9); otherwise it polls on."""
        io = self.io
        assert io is not None
        if self.sim.rules.resched_reentry and self.hybrid and io.polled and io.sleep_ns == 0:
            self._wait(io)
            return
        self.cpu.poll(self)

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
            self.cpu.wake(self, self._complete)
        else:  # a waiter spinning without poll queues sees it now
            self.cpu.completion_visible(self)

    def poll_found(self) -> None:
        self._complete()

    def _complete(self) -> None:
        """The completion path. After a sleep it finds its caches cold and its CPU in a
        deeper idle state the longer the sleep was: cold_ns more after cold_full_ns of sleep,
        in proportion before."""
        self._report()
        host = self.host
        cost = host.complete_ns
        if self.idle_ns and host.cold_ns:
            cost += host.cold_ns * min(self.idle_ns, host.cold_full_ns) // host.cold_full_ns
        sim = self.sim
        done = self.engine.now + cost
        if self.cpu.sole and sim.stop_after is None and done < sim.end_ns:
            # A CPU's only job, its own I/O done: no interrupt can come before the next
            # doorbell, so this I/O's end and the next one's submission are one stretch of
            # CPU time, and one event (--ios runs keep the event: jobs count each other's).
            self._done(done)
            self._begin(done)
            self.cpu.exec(self, cost + self.submit_ns, self._issue)
            return
        self.cpu.exec(self, cost, self._finish)

    def _report(self) -> None:
        """The request ends (blk_mq_end_request): the policy's statistics and feedback take
        it before the completion path returns to fio."""
        if not self.reported:
            self.reported = True
            assert self.io is not None
            self.policy.on_complete(self.io, self.engine.now, self.found_first)

    def _finish(self) -> None:
        self._done(self.engine.now)
        self.next_io()

    def _done(self, now: int) -> None:
        """fio sees the I/O complete at ``now``."""
        self.latencies.append(now - self.io_start)
        self.sim.completed += 1
        self.sim.last_completion_ns = now


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
