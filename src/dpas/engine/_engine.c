/* dpas.engine._engine: the userspace completion engine's hot loop.
 *
 * One native thread per job does synchronous I/O at depth 1 with O_DIRECT at random
 * block-aligned offsets, pinned to its CPU, and waits as its mode says (a workload's job has
 * its own op, size, CPUs, offsets and pattern in time: workload_loop):
 *   INT   an interrupt-driven ring: io_uring_enter(1 submitted, wait for 1);
 *   CP    an IOPOLL ring: the kernel spins until the completion;
 *   HYB   an IOPOLL|HYBRID_IOPOLL ring: the kernel sleeps, then spins (6.13+);
 *   LHP, EHP, PAS, DPAS: the policy core (policy_core.c, the compiled copy of dpas.policy)
 *         decides per I/O: the interrupt ring, the IOPOLL ring at once (CP's very path), or
 *         the IOPOLL ring with a sleep first (clock_nanosleep), one non-spinning poll pass,
 *         then spinning. Found on that first pass = overslept: the policy's feedback.
 * one_io() is the whole sequence of an I/O, once, for every mode and for both devices: the
 * real rings, and a fake device with a virtual clock and scripted completion times that lets
 * the fast tests run the hot loop's exact calls without a polled drive.
 * The threads never take Python's GIL. Policy events of one state domain (a CPU: its PAS and
 * DPAS state, its LHP and EHP statistics) run under that domain's mutex, one lock hold per
 * step of the I/O, and an LHP or EHP event that opens or closes a statistics window holds
 * every domain's; so every decision can be replayed through dpas.policy from the log.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "policy_core.h"
#include "replay.h"

/* setup flags newer than some uapi headers; a kernel without one answers EINVAL */
#ifndef IORING_SETUP_HYBRID_IOPOLL
#define IORING_SETUP_HYBRID_IOPOLL (1U << 17) /* 6.13 */
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8) /* 5.19 */
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12) /* 6.0 */
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* 6.1 */
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define CACHELINE 64

/* fio's latency histogram layout: 64 buckets per power of two, 29 groups (~1.6% error) */
#define HIST_BITS 6
#define HIST_VAL (1 << HIST_BITS)
#define HIST_GROUPS 29
#define HIST_NR (HIST_GROUPS * HIST_VAL)

enum wait_kind { WAIT_POLICY = 0, WAIT_HYBRID = 1 };
enum log_flag { LOG_POLLED = 1, LOG_SLEPT = 2, LOG_FOUND_FIRST = 4 };
/* LHP, EHP: the I/O's event (LOG_BOUNDARY << enum pol_event) opened or closed a window */
#define LOG_BOUNDARY 8
/* one_io() is instantiated for each device; the constant folds the other one away */
enum device { DEV_RING = 0, DEV_FAKE = 1 };

/* One I/O of the per-I/O log: what the policy decided and what the poll found. Built on the
 * stack during the I/O and copied into the log after its completion time was taken, so the
 * log's page faults never fall inside a measured latency. */
typedef struct {
    int64_t submit_ns, wait_start_ns, wait_end_ns, done_ns; /* from the run's start */
    int64_t sleep_ns;
    /* submit, wait_start, wait_end, complete: PAS, DPAS: the domain's event numbers; LHP, EHP:
     * the window epoch each saw (the windows opened and closed before it) */
    uint32_t seq[4];
    int16_t cpu;
    int8_t mode;   /* DPAS: the CPU's mode at submission; -1 otherwise */
    uint8_t flags; /* enum log_flag */
    int32_t dur_cnt;
    int64_t offset; /* bytes */
} io_log;

/* A workload's pattern in time (dpas.workload.Pattern), ns. */
typedef struct {
    int64_t rate_iops, think_ns, burst_ios, period_ns, start_ns, stop_ns, on_ns, off_ns;
} pattern;

/* dpas.workload.Pacer: when a job may issue its next I/O. Same fields, same integer
 * arithmetic, same order of tests; tests/test_engine_workload_pacer.py holds one against the
 * other through pace(). */
#define NEVER (-1)
typedef struct {
    pattern p;
    int64_t stop, epoch_start, in_epoch, count, first, window;
} pacer;

/* One job's own I/O, placement and pattern (steady: the run's, the same for every job). */
typedef struct {
    int op, cpu;
    int paced;    /* a pattern that says when to issue: rate, bursts, start, stop, on/off */
    int nallowed; /* > 0: not pinned, free on the ``allowed`` CPUs (``cpu``: where it starts) */
    int64_t bs, region_blocks;
    pattern pat;
    /* zipf offsets (theta 0: uniform): Gray et al.'s generator, its constants per job */
    double theta, zetan, half_pow, alpha, eta;
    cpu_set_t allowed;
} job_spec;

typedef struct {
    int fd;
    int inflight; /* I/Os submitted and not reaped: the buffer and the ring must stay */
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_ptr, *cq_ptr;
    size_t sq_len, cq_len, sqes_len;
} ring;

typedef struct {
    pthread_mutex_t lock;
    uint32_t seq;
} __attribute__((aligned(CACHELINE))) domain;

/* The fake device: a virtual clock, each I/O done a scripted time after its submission, each
 * sleep late by a scripted time. Nothing else of the loop knows it is fake. */
typedef struct {
    int64_t vt, done_at, submitted, slept;
    const int64_t *device_ns, *late_ns;
    int64_t n_device, n_late;
    int real_sleep;  /* 1: also sleep for real (signals then reach clock_nanosleep); 2: make a
                      * real sleep of 1 ns (its system call and wake-up: benchmarks) */
    int clock_cost;  /* also read the real clock where the loop reads one (benchmarks) */
} fake_dev;

struct engine;

typedef struct {
    struct engine *e;
    int index, cpu;
    pthread_t thread;
    domain *domain;
    ring irq, poll;
    fake_dev fake;
    job_spec spec;
    int bucket; /* the statistics bucket of every I/O of the job (one op, one size) */
    void *buf;
    uint64_t rng, offset; /* the I/O's offset, for a resubmission */
    /* results */
    int64_t ios, sleeps, overslept, underslept;
    int64_t lat_sum_ns, cpu_ns, ctx_voluntary, ctx_involuntary;
    uint64_t *hist;
    int64_t *bins; /* per bin of the completion time: I/Os, latency sum (NULL: none kept) */
    io_log *log;
    int64_t logged;
    /* the written offsets counted by their remainder modulo ``waf_span`` in 512-byte units
     * (dpas.bench.waf: WAF_IU depends on nothing else of an offset; NULL: not counted) */
    int64_t *residues;
    int64_t elapsed_ns; /* the start of the I/Os to this job's end */
    int64_t canary_changed; /* bytes of the released buffer changed afterwards (a test's) */
    int leaked;          /* an I/O could not be reaped: ring and buffer kept, never reused */
    int error;           /* errno of the first failure, 0 if none */
    const char *failed;  /* what failed */
} __attribute__((aligned(CACHELINE))) job;

typedef struct engine {
    /* config */
    int fd, op, wait_kind, method, jobs, device, block_signals;
    int windowed;   /* LHP, EHP: statistics per CPU, windows opened and closed holding every
                     * domain */
    uint32_t epoch; /* the windows opened and closed so far; written holding every domain */
    int64_t bs, region_start, region_blocks, runtime_ns, ios_per_job, log_cap, seed;
    int64_t fail_at, canary_ns;
    int64_t nbins, bin_ns; /* each job's completion-time bins (0: none) */
    int64_t waf_span;      /* count the written offsets modulo this (a power of two; 0: not) */
    int *cpus;
    job_spec *spec; /* one per job; the run's own for a steady run */
    pol_policy *policy;
    domain *domains;
    int ndomains;
    fake_dev fake;
    /* run: the jobs count themselves ready, then wait for go; each one's end is signalled */
    atomic_int ready, go, stop;
    pthread_mutex_t ended_lock;
    pthread_cond_t ended_cond;
    int ended;
    struct timespec t0;
    job *job;
} engine;

/* ---- clocks -------------------------------------------------------------------------------- */

static inline int64_t ts_ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static inline int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return ts_ns(&t);
}

static void sleep_ns(int64_t ns)
{
    struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR) {
    }
}

/* ---- io_uring by raw system calls, as fio's engine speaks to it ------------------------------ */

static void ring_unmap(ring *r)
{
    if (r->sqes && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_ptr && r->cq_ptr != MAP_FAILED)
        munmap(r->cq_ptr, r->cq_len);
    if (r->sq_ptr && r->sq_ptr != MAP_FAILED)
        munmap(r->sq_ptr, r->sq_len);
    r->sqes = NULL;
    r->cq_ptr = r->sq_ptr = NULL;
}

/* A ring of two entries with fio's setup flags: COOP_TASKRUN (no IPI for completions),
 * SINGLE_ISSUER|DEFER_TASKRUN (one thread submits and reaps), each dropped in fio's order on
 * a kernel that answers EINVAL, so the engine's rings are the kind fio's are. */
static int ring_setup(ring *r, unsigned mode_flags)
{
    struct io_uring_params p;
    unsigned extra = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
                     IORING_SETUP_DEFER_TASKRUN;
    memset(r, 0, sizeof *r);
    for (;;) {
        memset(&p, 0, sizeof p);
        p.flags = mode_flags | extra;
        r->fd = (int)syscall(__NR_io_uring_setup, 2, &p);
        if (r->fd >= 0 || errno != EINVAL || !extra)
            break;
        if (extra & IORING_SETUP_DEFER_TASKRUN)
            extra &= ~(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER);
        else
            extra = 0;
    }
    if (r->fd < 0) {
        int err = -errno;
        r->fd = -1;
        return err;
    }
    r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sq_ptr = mmap(0, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_SQ_RING);
    r->cq_ptr = mmap(0, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_CQ_RING);
    r->sqes = mmap(0, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                   IORING_OFF_SQES);
    if (r->sq_ptr == MAP_FAILED || r->cq_ptr == MAP_FAILED || r->sqes == MAP_FAILED) {
        int err = -errno;
        ring_unmap(r); /* the mappings that did succeed */
        close(r->fd);
        r->fd = -1;
        return err;
    }
    char *sq = r->sq_ptr, *cq = r->cq_ptr;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

static void ring_close(ring *r)
{
    if (r->fd < 0)
        return;
    ring_unmap(r);
    close(r->fd);
    r->fd = -1;
}

static void ring_queue(ring *r, int op, int fd, void *buf, unsigned len, uint64_t offset)
{
    unsigned tail = *r->sq_tail, index = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = op ? IORING_OP_WRITE : IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = len;
    sqe->off = offset;
    r->sq_array[index] = index;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* io_uring_enter, with what fio retries retried: a signal (EINTR), a full queue or a
 * momentary lack of resources (EAGAIN, EBUSY). Submitting calls return how many were taken;
 * the SQE stays queued until one is, so a retry submits it then. */
static inline int enter(ring *r, unsigned submit, unsigned min_complete, unsigned flags)
{
    for (long idle = 0;;) {
        int ret = (int)syscall(__NR_io_uring_enter, r->fd, submit, min_complete, flags, NULL, 0);
        ret = ret < 0 ? -errno : ret;
        if (ret == -EINTR)
            continue; /* every retry makes progress: a signal cannot keep it from the I/O */
        if (ret == -EAGAIN || ret == -EBUSY || (submit && ret == 0)) {
            if (++idle > 1000000)
                return ret ? ret : -EAGAIN; /* nothing taken, ever: not a passing state */
            sched_yield();
            continue;
        }
        return ret;
    }
}

/* The completion if one is queued: 1 and its result in *res, else 0. */
static inline int reap(ring *r, int *res)
{
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return 0;
    *res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    r->inflight--;
    return 1;
}

/* Until the completion is reaped; 0, or -errno (the I/O is then still in flight). */
static int wait_done(ring *r, int *res)
{
    while (!reap(r, res)) {
        int ret = enter(r, 0, 1, IORING_ENTER_GETEVENTS);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Reaps what is still in flight before the ring or the buffer can go; 0, or -1 if the kernel
 * refused to wait (the caller must then keep both forever). */
static int ring_drain(ring *r)
{
    int res;
    while (r->fd >= 0 && r->inflight > 0)
        if (wait_done(r, &res) < 0)
            return -1;
    return 0;
}

/* ---- the device's primitives: the rings, or the fake ------------------------------------------ */

static inline int64_t fake_script(const int64_t *v, int64_t n, int64_t k)
{
    return n ? v[k % n] : 0;
}

ALWAYS_INLINE int64_t dev_now(job *j, const int dev)
{
    if (dev == DEV_FAKE) {
        if (j->fake.clock_cost)
            (void)mono_ns();
        return j->fake.vt;
    }
    return mono_ns() - ts_ns(&j->e->t0);
}

/* A test's injected failure: the I/O goes to the device, then the wait "fails". */
static inline int injected(const job *j) { return j->e->fail_at && j->ios + 1 == j->e->fail_at; }

/* A completion that did not do the I/O but may on a second try: a signal's EINTR, EAGAIN, or
 * ECANCELED (io_uring cancels a request it had handed to a worker when the task is
 * interrupted). fio's engine resubmits what it can; so does the engine, a bounded number of
 * times in a row. */
#define RESUBMITS 100
static inline int transient(int res) { return res == -EINTR || res == -EAGAIN || res == -ECANCELED; }

/* Queue the job's I/O and submit it; with ``wait`` the same system call waits for it. */
static int ring_submit(job *j, ring *r, int wait)
{
    engine *e = j->e;
    ring_queue(r, j->spec.op, e->fd, j->buf, (unsigned)j->spec.bs, j->offset);
    int ret = enter(r, 1, wait ? 1 : 0, wait ? IORING_ENTER_GETEVENTS : 0);
    if (ret < 0)
        return ret;
    r->inflight++;
    return 0;
}

/* Until the I/O is done: a transient failure is submitted again. 0 or -errno. */
static int wait_io(job *j, ring *r, int *res)
{
    for (int tries = 0;; tries++) {
        int ret = wait_done(r, res);
        if (ret < 0 || !transient(*res) || tries == RESUBMITS)
            return ret;
        if ((ret = ring_submit(j, r, 1)) < 0)
            return ret;
    }
}

/* Submit one I/O; with ``wait`` also wait for it in the kernel (INT: the interrupt; CP, HYB:
 * polling), one system call. 0 or -errno. */
ALWAYS_INLINE int dev_submit(job *j, const int dev, ring *r, uint64_t offset, int wait, int *res)
{
    if (dev == DEV_FAKE) {
        fake_dev *f = &j->fake;
        f->done_at = f->vt + fake_script(f->device_ns, f->n_device, f->submitted + j->index * 7);
        f->submitted++;
        if (wait) {
            f->vt = f->done_at;
            *res = (int)j->spec.bs;
        }
        return 0;
    }
    int fail = injected(j);
    j->offset = offset;
    int ret = ring_submit(j, r, wait && !fail);
    if (ret < 0)
        return ret;
    if (fail)
        return -ECANCELED;
    return wait ? wait_io(j, r, res) : 0;
}

ALWAYS_INLINE void dev_sleep(job *j, const int dev, int64_t ns)
{
    if (dev == DEV_FAKE) {
        fake_dev *f = &j->fake;
        if (f->real_sleep)
            sleep_ns(f->real_sleep == 1 ? ns : 1);
        f->vt += ns + fake_script(f->late_ns, f->n_late, f->slept + j->index * 5);
        f->slept++;
        return;
    }
    sleep_ns(ns);
}

/* One pass that does not spin: 1 found (result in *res), 0 not yet, or -errno. The CQ is looked
 * at first: with a completion already queued the kernel would not poll. */
ALWAYS_INLINE int dev_poll_once(job *j, const int dev, ring *r, int *res)
{
    if (dev == DEV_FAKE) {
        if (j->fake.vt < j->fake.done_at)
            return 0;
        *res = (int)j->spec.bs;
        return 1;
    }
    int found = reap(r, res);
    if (!found) {
        int ret = enter(r, 0, 0, IORING_ENTER_GETEVENTS);
        if (ret < 0)
            return ret;
        found = reap(r, res);
    }
    if (found && transient(*res)) {
        int ret = ring_submit(j, r, 0); /* not done after all: the spin waits for it */
        return ret < 0 ? ret : 0;
    }
    return found;
}

ALWAYS_INLINE int dev_spin(job *j, const int dev, ring *r, int *res)
{
    if (dev == DEV_FAKE) {
        if (j->fake.vt < j->fake.done_at)
            j->fake.vt = j->fake.done_at;
        *res = (int)j->spec.bs;
        return 0;
    }
    return wait_io(j, r, res);
}

/* ---- histogram (fio's plat_val_to_idx) ------------------------------------------------------ */

static inline unsigned hist_index(uint64_t v)
{
    unsigned msb = v ? 63 - (unsigned)__builtin_clzll(v) : 0;
    if (msb <= HIST_BITS)
        return (unsigned)v;
    unsigned error_bits = msb - HIST_BITS;
    unsigned idx = ((error_bits + 1) << HIST_BITS) + ((HIST_VAL - 1) & (unsigned)(v >> error_bits));
    return idx < HIST_NR - 1 ? idx : HIST_NR - 1;
}

/* ---- one I/O ---------------------------------------------------------------------------------- */

static inline uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fail(job *j, int err, const char *what)
{
    if (!j->error) {
        j->error = err;
        j->failed = what;
    }
    atomic_store(&j->e->stop, 1);
}

static inline int kernel_waits(const engine *e)
{
    return e->wait_kind == WAIT_HYBRID || e->method == POL_INT || e->method == POL_CP;
}

static inline int io_result(const job *j, int res)
{
    if (res < 0)
        return res;
    return res == j->spec.bs ? 0 : -EIO; /* a short transfer: the target ended inside the region */
}

/* INT, CP and HYB: the kernel waits; nothing to decide. */
ALWAYS_INLINE int kernel_io(job *j, const int dev, uint64_t offset, io_log *entry)
{
    engine *e = j->e;
    int res = 0;
    ring *r = e->method == POL_INT && e->wait_kind != WAIT_HYBRID ? &j->irq : &j->poll;
    entry->flags = e->method == POL_INT && e->wait_kind != WAIT_HYBRID ? 0 : LOG_POLLED;
    entry->submit_ns = dev_now(j, dev);
    int ret = dev_submit(j, dev, r, offset, 1, &res);
    entry->done_ns = dev_now(j, dev);
    return ret < 0 ? ret : io_result(j, res);
}

/* Before an event of LHP or EHP that opens or closes a statistics window (it merges or clears
 * every CPU's statistics): trade the job's own domain lock for every domain's lock, taken in
 * order so that two such events cannot deadlock, and start a new epoch. 1 when every lock is
 * held; the caller then calls window_end(). */
static int window_begin(job *j, int event, int bucket, int64_t now)
{
    engine *e = j->e;
    if (!e->windowed || !pol_window_boundary(e->policy, event, bucket, now))
        return 0;
    pthread_mutex_unlock(&j->domain->lock);
    for (int i = 0; i < e->ndomains; i++)
        pthread_mutex_lock(&e->domains[i].lock);
    if (pol_window_boundary(e->policy, event, bucket, now)) {
        e->epoch++;
        return 1;
    }
    for (int i = 0; i < e->ndomains; i++) /* another CPU's event did it meanwhile */
        if (&e->domains[i] != j->domain)
            pthread_mutex_unlock(&e->domains[i].lock);
    return 0;
}

/* Back to the job's own domain lock only. */
static void window_end(job *j, int all)
{
    engine *e = j->e;
    if (all)
        for (int i = 0; i < e->ndomains; i++)
            if (&e->domains[i] != j->domain)
                pthread_mutex_unlock(&e->domains[i].lock);
}

/* An event's place in the log: its domain's next number, or (LHP, EHP) the window epoch. */
static inline uint32_t event_seq(job *j, io_log *entry, int event, int boundary)
{
    if (!j->e->windowed)
        return j->domain->seq++;
    if (boundary)
        entry->flags |= LOG_BOUNDARY << event;
    return j->e->epoch;
}

/* The completion's policy event, with the verdict (called holding the job's domain lock). */
static void complete_event(job *j, io_log *entry, pol_io *io, int64_t now, int found)
{
    int all = window_begin(j, POL_EV_COMPLETE, io->bucket, now);
    entry->seq[POL_EV_COMPLETE] = event_seq(j, entry, POL_EV_COMPLETE, all);
    pol_complete(j->e->policy, io, now, found, j->cpu);
    window_end(j, all);
}

/* LHP, EHP, PAS, DPAS: the policy decides at submission and at the wait, in one lock hold; an
 * I/O it sends to the interrupt or to polling at once takes INT's or CP's one system call; a
 * sleeping one submits, sleeps, polls once, and only then reads the clock and books its
 * wake-up, so that nothing of dpas's own runs between the timer and the verdict's poll. */
ALWAYS_INLINE int policy_io(job *j, const int dev, uint64_t offset, io_log *entry)
{
    engine *e = j->e;
    domain *d = j->domain;
    pol_io io;
    int res = 0, found = 0, ret, all;
    int64_t sleep = 0;

    int64_t t_submit = dev_now(j, dev);
    pthread_mutex_lock(&d->lock);
    all = window_begin(j, POL_EV_SUBMIT, j->bucket, t_submit);
    entry->seq[0] = event_seq(j, entry, POL_EV_SUBMIT, all);
    pol_submit(e->policy, &io, j->cpu, j->spec.op, j->spec.bs, t_submit);
    window_end(j, all);
    if (io.polled) {
        all = window_begin(j, POL_EV_WAIT_START, io.bucket, t_submit);
        entry->seq[1] = event_seq(j, entry, POL_EV_WAIT_START, all);
        sleep = pol_wait_start(e->policy, &io, t_submit);
        window_end(j, all);
        if (sleep <= 0) {
            entry->seq[2] = event_seq(j, entry, POL_EV_WAIT_END, 0);
            pol_wait_end(e->policy, &io, t_submit);
        }
    }
    pthread_mutex_unlock(&d->lock);
    entry->submit_ns = t_submit;
    entry->mode = (int8_t)io.mode;
    if (io.polled) {
        entry->flags |= LOG_POLLED;
        entry->wait_start_ns = entry->wait_end_ns = t_submit;
    }
    if (!io.polled || sleep <= 0) {
        ret = dev_submit(j, dev, io.polled ? &j->poll : &j->irq, offset, 1, &res);
    } else {
        entry->sleep_ns = sleep;
        entry->flags |= LOG_SLEPT;
        ret = dev_submit(j, dev, &j->poll, offset, 0, &res);
        if (ret < 0)
            return ret;
        dev_sleep(j, dev, sleep);
        found = dev_poll_once(j, dev, &j->poll, &res);
        if (found < 0)
            return found;
        int64_t t_woke = dev_now(j, dev);
        j->sleeps++;
        pthread_mutex_lock(&d->lock);
        entry->seq[2] = event_seq(j, entry, POL_EV_WAIT_END, 0);
        pol_wait_end(e->policy, &io, t_woke);
        if (found)
            complete_event(j, entry, &io, t_woke, 1);
        pthread_mutex_unlock(&d->lock);
        entry->wait_end_ns = t_woke;
        if (found) {
            j->overslept++;
            entry->flags |= LOG_FOUND_FIRST;
            entry->done_ns = t_woke;
        } else {
            j->underslept++;
            ret = dev_spin(j, dev, &j->poll, &res);
        }
    }
    if (ret < 0)
        return ret;
    if (!found) {
        int64_t t_done = dev_now(j, dev);
        pthread_mutex_lock(&d->lock);
        complete_event(j, entry, &io, t_done, 0);
        pthread_mutex_unlock(&d->lock);
        entry->done_ns = t_done;
    }
    entry->dur_cnt = io.dur_cnt;
    return io_result(j, res);
}

/* ---- offsets: uniform, or zipf ------------------------------------------------------------- */

/* fio's ZIPF_MAX_GEN: zeta(n) is summed over at most this many ranks */
#define ZIPF_TERMS 10000000

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The constants of Gray et al.'s zipfian generator ("Quickly generating billion-record
 * synthetic databases", 1994), as YCSB's ZipfianGenerator and fio's zipf compute them. Its
 * alpha has a pole at theta = 1, which fio accepts: that theta is taken just below 1. */
static void zipf_init(job_spec *s)
{
    double theta = fabs(s->theta - 1.0) < 1e-4 ? 1.0 - 1e-4 : s->theta;
    int64_t n = s->region_blocks, terms = n < ZIPF_TERMS ? n : ZIPF_TERMS;
    double zetan = 0.0;
    for (int64_t i = 1; i <= terms; i++)
        zetan += pow((double)i, -theta);
    s->zetan = zetan;
    s->half_pow = pow(0.5, theta);
    s->alpha = 1.0 / (1.0 - theta);
    s->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - (1.0 + s->half_pow) / zetan);
}

/* The job's next block: uniform, or a zipf rank scattered over the region by a hash, as
 * YCSB's scrambled zipfian and fio do, so that the hot blocks are not the region's first. */
ALWAYS_INLINE uint64_t next_block(job *j)
{
    const job_spec *s = &j->spec;
    uint64_t n = (uint64_t)s->region_blocks, r = splitmix(&j->rng);
    if (s->theta == 0.0)
        return r % n;
    double u = (double)(r >> 11) * 0x1.0p-53, uz = u * s->zetan;
    uint64_t rank = 1;
    if (uz < 1.0)
        rank = 0;
    else if (uz >= 1.0 + s->half_pow) {
        double x = (double)n * pow(s->eta * u - s->eta + 1.0, s->alpha);
        rank = x < (double)n ? (uint64_t)x : n - 1; /* NaN too */
    }
    return mix64(rank) % n;
}

/* An unpinned job's I/O belongs to the CPU it is submitted on: that CPU's policy state, as
 * in the kernel. The I/O keeps it to its completion. */
static inline void follow_cpu(job *j)
{
    engine *e = j->e;
    int cpu = sched_getcpu();
    if (cpu >= 0 && cpu < e->ndomains && cpu != j->cpu) {
        j->cpu = cpu;
        j->domain = &e->domains[pol_domain(e->policy, cpu)];
    }
}

/* One I/O and its bookkeeping: the sequence every mode and both devices share. */
ALWAYS_INLINE int one_io(job *j, const int dev)
{
    engine *e = j->e;
    io_log entry;
    if (dev == DEV_RING && j->spec.nallowed)
        follow_cpu(j);
    memset(&entry, 0, sizeof entry);
    entry.cpu = (int16_t)j->cpu;
    entry.mode = -1;
    entry.dur_cnt = -1;
    uint64_t offset = (uint64_t)e->region_start + next_block(j) * (uint64_t)j->spec.bs;
    entry.offset = (int64_t)offset;
    int ret = kernel_waits(e) ? kernel_io(j, dev, offset, &entry)
                              : policy_io(j, dev, offset, &entry);
    if (ret < 0)
        return ret;
    int64_t lat = entry.done_ns - entry.submit_ns;
    j->lat_sum_ns += lat;
    j->hist[hist_index((uint64_t)(lat > 0 ? lat : 0))]++;
    j->ios++;
    if (j->bins) {
        int64_t b = entry.done_ns / e->bin_ns;
        b = b < e->nbins ? b : e->nbins - 1;
        j->bins[2 * b]++;
        j->bins[2 * b + 1] += lat;
    }
    if (j->logged < e->log_cap)
        j->log[j->logged++] = entry;
    if (j->residues && j->spec.op == 1)
        j->residues[(offset & (uint64_t)(e->waf_span - 1)) >> 9]++;
    if (entry.done_ns >= e->runtime_ns || (e->ios_per_job && j->ios >= e->ios_per_job))
        return 1;
    return 0;
}

static void io_failed(job *j, int ret)
{
    fail(j, -ret, ret == -ECANCELED && j->e->fail_at ? "an injected failure" : "an I/O");
}

ALWAYS_INLINE void job_loop(job *j, const int dev)
{
    while (!atomic_load_explicit(&j->e->stop, memory_order_relaxed)) {
        int ret = one_io(j, dev);
        if (ret < 0) {
            io_failed(j, ret);
            break;
        }
        if (ret)
            break;
    }
}

/* ---- a workload's pattern in time ------------------------------------------------------------ */

static void pacer_init(pacer *pc, const pattern *p, int64_t end_ns)
{
    pc->p = *p;
    pc->stop = p->stop_ns ? (p->stop_ns < end_ns ? p->stop_ns : end_ns) : end_ns;
    pc->epoch_start = -1;
    pc->in_epoch = 0;
    pc->count = 0;
    pc->first = -1;
    pc->window = -1;
}

/* Pacer._on: t, or the next on-window's start when t is in an off phase; a new window
 * paces its rate anew. */
static int64_t pacer_on(pacer *pc, int64_t t)
{
    const pattern *p = &pc->p;
    if (!p->on_ns)
        return t;
    int64_t cycle = p->on_ns + p->off_ns, into = (t - p->start_ns) % cycle;
    if (into >= p->on_ns)
        t += cycle - into;
    if ((t - p->start_ns) / cycle != pc->window) {
        pc->window = (t - p->start_ns) / cycle;
        pc->first = -1;
        pc->count = 0;
    }
    return t;
}

/* Pacer.next_at: the window, the on/off phase, the burst epoch, the rate, on/off again. */
static int64_t pacer_next_at(pacer *pc, int64_t now)
{
    const pattern *p = &pc->p;
    int64_t t = pacer_on(pc, now > p->start_ns ? now : p->start_ns);
    if (p->burst_ios) {
        if (pc->epoch_start < 0) {
            pc->epoch_start = t;
            pc->in_epoch = 0;
        } else if (pc->in_epoch >= p->burst_ios || t - pc->epoch_start > p->period_ns) {
            int64_t start = pc->epoch_start + p->period_ns;
            pc->epoch_start = start > t ? start : t;
            pc->in_epoch = 0;
        }
        t = pc->epoch_start > t ? pc->epoch_start : t;
    }
    if (p->rate_iops && pc->first >= 0) {
        int64_t due = pc->first + (int64_t)((__int128)pc->count * 1000000000 / p->rate_iops);
        t = due > t ? due : t;
    }
    t = pacer_on(pc, t);
    return t >= pc->stop ? NEVER : t;
}

static void pacer_issued(pacer *pc, int64_t at)
{
    if (pc->first < 0)
        pc->first = at;
    pc->count++;
    pc->in_epoch++;
}

/* Idle until ``at`` (ns from the start) in absolute sleeps, so that no wake-up's lateness
 * shifts the next; a slice at a time, so that a stop is seen. 0 when the run was stopped. */
#define IDLE_SLICE_NS 100000000LL
ALWAYS_INLINE int dev_idle_until(job *j, const int dev, int64_t at)
{
    engine *e = j->e;
    if (dev == DEV_FAKE) {
        if (j->fake.vt < at)
            j->fake.vt = at;
        return 1;
    }
    int64_t t0 = ts_ns(&e->t0);
    for (;;) {
        if (atomic_load_explicit(&e->stop, memory_order_relaxed))
            return 0;
        int64_t now = mono_ns() - t0;
        if (now >= at)
            return 1;
        int64_t until = t0 + (at - now > IDLE_SLICE_NS ? now + IDLE_SLICE_NS : at);
        struct timespec t = {until / 1000000000LL, until % 1000000000LL};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
    }
}

/* Think time is CPU work: the job keeps its CPU, spinning on the clock (fio's thinktime_spin). */
ALWAYS_INLINE void dev_think(job *j, const int dev, int64_t ns)
{
    if (dev == DEV_FAKE) {
        j->fake.vt += ns;
        return;
    }
    int64_t until = dev_now(j, dev) + ns;
    while (dev_now(j, dev) < until && !atomic_load_explicit(&j->e->stop, memory_order_relaxed)) {
    }
}

/* A workload's job: the Pacer's rule says when each I/O may go out, the job idles until
 * then, and after each I/O it spins its think time. */
ALWAYS_INLINE void workload_loop(job *j, const int dev)
{
    engine *e = j->e;
    pacer pc;
    pacer_init(&pc, &j->spec.pat, e->runtime_ns);
    while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
        int64_t now = dev_now(j, dev);
        if (j->spec.paced) {
            int64_t at = pacer_next_at(&pc, now);
            if (at == NEVER)
                break;
            if (at > now) {
                if (!dev_idle_until(j, dev, at))
                    break;
                now = dev_now(j, dev);
            }
            pacer_issued(&pc, now);
        } else if (now >= e->runtime_ns) {
            break;
        }
        int ret = one_io(j, dev);
        if (ret < 0) {
            io_failed(j, ret);
            break;
        }
        if (ret)
            break;
        if (j->spec.pat.think_ns)
            dev_think(j, dev, j->spec.pat.think_ns);
    }
}

static inline int patterned(const job *j) { return j->spec.paced || j->spec.pat.think_ns; }

static void job_loop_ring(job *j)
{
    if (patterned(j))
        workload_loop(j, DEV_RING);
    else
        job_loop(j, DEV_RING);
}

static void job_loop_fake(job *j)
{
    if (patterned(j))
        workload_loop(j, DEV_FAKE);
    else
        job_loop(j, DEV_FAKE);
}

/* ---- one job's life ----------------------------------------------------------------------------- */

static int64_t thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return ts_ns(&t);
}

static void job_rings(job *j)
{
    engine *e = j->e;
    int ret;
    int needs_irq = e->method == POL_INT || e->method == POL_EHP || e->method == POL_DPAS;
    int needs_poll = e->method != POL_INT || e->wait_kind == WAIT_HYBRID;
    if (needs_irq && (ret = ring_setup(&j->irq, 0)) < 0) {
        fail(j, -ret, "setting up an io_uring");
        return;
    }
    unsigned poll_flags = IORING_SETUP_IOPOLL;
    if (e->wait_kind == WAIT_HYBRID)
        poll_flags |= IORING_SETUP_HYBRID_IOPOLL;
    if (needs_poll && (ret = ring_setup(&j->poll, poll_flags)) < 0)
        fail(j, -ret, e->wait_kind == WAIT_HYBRID ? "setting up an IOPOLL|HYBRID_IOPOLL io_uring"
                                                  : "setting up an IOPOLL io_uring");
}

static void job_setup(job *j)
{
    engine *e = j->e;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    if (j->spec.nallowed)
        set = j->spec.allowed;
    int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (err)
        fail(j, err, j->spec.nallowed ? "setting the job's CPUs" : "pinning the job to its CPU");
    /* microsecond sleeps: the default 50 us of slack would swamp them */
    if (!j->error && prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) < 0)
        fail(j, errno, "setting the timer slack to 1 ns");
    if (!j->error && (err = posix_memalign(&j->buf, 4096, (size_t)j->spec.bs))) {
        j->buf = NULL;
        fail(j, err, "allocating the I/O buffer");
    }
    if (j->buf)
        for (int64_t i = 0; i < j->spec.bs; i += 8)
            *(uint64_t *)((char *)j->buf + i) = splitmix(&j->rng);
    if (!j->error && e->device == DEV_RING)
        job_rings(j);
}

/* A test's canary: after the buffer is released, nothing may write to it. */
static void canary_check(job *j)
{
    unsigned char *b = j->buf;
    memset(b, 0xA5, (size_t)j->spec.bs);
    sleep_ns(j->e->canary_ns);
    for (int64_t i = 0; i < j->spec.bs; i++)
        j->canary_changed += b[i] != 0xA5;
}

/* The rings and the buffer go only once nothing is in flight: a read still in flight would
 * write into freed, reused memory. An I/O the kernel will not let us reap keeps both. */
static void job_release(job *j)
{
    if (ring_drain(&j->irq) < 0 || ring_drain(&j->poll) < 0) {
        j->leaked = 1;
        return;
    }
    if (j->buf && j->e->canary_ns)
        canary_check(j);
    ring_close(&j->irq);
    ring_close(&j->poll);
    free(j->buf);
    j->buf = NULL;
}

static void job_ended(engine *e)
{
    pthread_mutex_lock(&e->ended_lock);
    e->ended++;
    pthread_cond_signal(&e->ended_cond);
    pthread_mutex_unlock(&e->ended_lock);
}

static void *job_main(void *arg)
{
    job *j = arg;
    engine *e = j->e;
    job_setup(j);
    atomic_fetch_add(&e->ready, 1);
    while (!atomic_load_explicit(&e->go, memory_order_acquire))
        sleep_ns(50000);

    struct rusage before, after;
    getrusage(RUSAGE_THREAD, &before);
    int64_t cpu0 = thread_cpu_ns();
    if (!atomic_load(&e->stop)) {
        if (e->device == DEV_FAKE)
            job_loop_fake(j);
        else
            job_loop_ring(j);
    }
    j->elapsed_ns = e->device == DEV_FAKE ? j->fake.vt : mono_ns() - ts_ns(&e->t0);
    j->cpu_ns = thread_cpu_ns() - cpu0;
    getrusage(RUSAGE_THREAD, &after);
    j->ctx_voluntary = after.ru_nvcsw - before.ru_nvcsw;
    j->ctx_involuntary = after.ru_nivcsw - before.ru_nivcsw;
    job_release(j);
    job_ended(e);
    return NULL;
}

/* ---- Python: run() ---------------------------------------------------------------------------- */

static int get_i64(PyObject *d, const char *key, int64_t *out)
{
    PyObject *v = PyDict_GetItemString(d, key);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "engine run: missing %s", key);
        return -1;
    }
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

/* An optional int64: ``fallback`` when the key is absent. */
static int opt_i64(PyObject *d, const char *key, int64_t fallback, int64_t *out)
{
    if (PyDict_GetItemString(d, key) == NULL) {
        *out = fallback;
        return 0;
    }
    return get_i64(d, key, out);
}

/* A script of the fake device: bytes of int64 ns >= 0, copied. */
static int fake_script_of(PyObject *fake, const char *key, int64_t **out, int64_t *n)
{
    PyObject *v = PyDict_GetItemString(fake, key);
    if (v == NULL || !PyBytes_Check(v) || PyBytes_GET_SIZE(v) % 8) {
        PyErr_Format(PyExc_ValueError, "engine run: fake %s must be bytes of int64", key);
        return -1;
    }
    *n = PyBytes_GET_SIZE(v) / 8;
    *out = malloc((size_t)(*n ? *n : 1) * 8);
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(*out, PyBytes_AS_STRING(v), (size_t)*n * 8);
    for (int64_t i = 0; i < *n; i++)
        if ((*out)[i] < 0) {
            PyErr_Format(PyExc_ValueError, "engine run: fake %s[%lld] < 0", key, (long long)i);
            return -1;
        }
    return 0;
}

static int parse_fake(PyObject *run, engine *e)
{
    PyObject *fake = PyDict_GetItemString(run, "fake");
    if (fake == NULL || fake == Py_None)
        return 0;
    if (!PyDict_Check(fake)) {
        PyErr_SetString(PyExc_TypeError, "engine run: fake must be a dict");
        return -1;
    }
    int64_t flags[2];
    e->device = DEV_FAKE;
    if (fake_script_of(fake, "device_ns", (int64_t **)&e->fake.device_ns, &e->fake.n_device) < 0 ||
        fake_script_of(fake, "late_ns", (int64_t **)&e->fake.late_ns, &e->fake.n_late) < 0 ||
        opt_i64(fake, "real_sleep", 0, &flags[0]) < 0 ||
        opt_i64(fake, "clock_cost", 0, &flags[1]) < 0)
        return -1;
    e->fake.real_sleep = flags[0] != 0; /* the policy's time */
    e->fake.clock_cost = flags[1] != 0;
    return 0;
}

/* A pattern, from the dict of dpas.workload.Pattern's fields (ns). */
static int parse_pattern(PyObject *d, pattern *p)
{
    static const char *keys[] = {"rate_iops", "think_ns", "burst_ios", "period_ns",
                                 "start_ns",  "stop_ns",  "on_ns",     "off_ns"};
    int64_t v[8];
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "engine run: a pattern must be a dict");
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        if (get_i64(d, keys[i], &v[i]) < 0)
            return -1;
        if (v[i] < 0 || v[i] > (1LL << 60)) {
            PyErr_Format(PyExc_ValueError, "engine run: pattern %s is out of range", keys[i]);
            return -1;
        }
    }
    *p = (pattern){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    return 0;
}

/* The CPUs an unpinned job may run on: a list of CPU numbers. */
static int parse_allowed(PyObject *list, job_spec *s)
{
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "engine run: a job's allowed CPUs must be a list");
        return -1;
    }
    CPU_ZERO(&s->allowed);
    s->nallowed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        long c = PyLong_AsLong(PyList_GET_ITEM(list, i));
        if (c < 0 || c >= CPU_SETSIZE) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "engine run: a CPU number is out of range");
            return -1;
        }
        CPU_SET((int)c, &s->allowed);
        s->nallowed++;
    }
    return 0;
}

/* The run's own I/O for every job: a steady run's jobs, and the bookkeeping benchmark's. */
static void steady_spec(const engine *e, job_spec *s, int i)
{
    memset(s, 0, sizeof *s);
    s->op = e->op;
    s->cpu = e->cpus[i];
    s->bs = e->bs;
    s->region_blocks = e->region_blocks;
}

/* One job of a workload: {"op", "bs", "region_blocks", "theta", "allowed", "pattern"}. */
static int parse_spec(PyObject *d, const engine *e, job_spec *s, int i)
{
    int64_t v[3];
    static const char *keys[] = {"op", "bs", "region_blocks"};
    steady_spec(e, s, i);
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "engine run: a job's spec must be a dict");
        return -1;
    }
    for (int k = 0; k < 3; k++)
        if (get_i64(d, keys[k], &v[k]) < 0)
            return -1;
    PyObject *theta = PyDict_GetItemString(d, "theta");
    PyObject *allowed = PyDict_GetItemString(d, "allowed");
    PyObject *pat = PyDict_GetItemString(d, "pattern");
    if (!theta || !allowed || !pat) {
        PyErr_SetString(PyExc_KeyError, "engine run: a job's spec needs theta, allowed, pattern");
        return -1;
    }
    s->theta = PyFloat_AsDouble(theta);
    if ((s->theta == -1.0 && PyErr_Occurred()) || parse_allowed(allowed, s) < 0 ||
        parse_pattern(pat, &s->pat) < 0)
        return -1;
    s->op = (int)v[0];
    s->bs = v[1];
    s->region_blocks = v[2];
    if ((s->op != 0 && s->op != 1) || s->bs < 512 || s->bs % 512 || s->bs > (1 << 30) ||
        s->region_blocks < 1 || !(s->theta >= 0.0 && s->theta < 100.0) ||
        (s->pat.on_ns == 0 && s->pat.off_ns != 0) || (s->pat.burst_ios && !s->pat.period_ns)) {
        PyErr_SetString(PyExc_ValueError, "engine run: a job's spec is out of range");
        return -1;
    }
    const pattern *p = &s->pat;
    /* Pattern.paced */
    s->paced = p->rate_iops || p->burst_ios || p->start_ns || p->stop_ns || p->on_ns;
    return 0;
}

/* ``specs``: one dict per job (a workload), or None (steady). A zipf's constants are
 * computed once for the jobs that share them. */
static int parse_specs(PyObject *run, engine *e)
{
    PyObject *specs = PyDict_GetItemString(run, "specs");
    if (specs == NULL || specs == Py_None)
        return 0;
    if (!PyList_Check(specs) || PyList_GET_SIZE(specs) != e->jobs) {
        PyErr_SetString(PyExc_ValueError, "engine run: specs must be a list, one per job");
        return -1;
    }
    e->spec = calloc((size_t)e->jobs, sizeof(job_spec));
    if (!e->spec) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < e->jobs; i++) {
        job_spec *s = &e->spec[i];
        if (parse_spec(PyList_GET_ITEM(specs, i), e, s, i) < 0)
            return -1;
        if (s->theta == 0.0)
            continue;
        const job_spec *same = NULL;
        for (int k = 0; k < i && !same; k++)
            if (e->spec[k].theta == s->theta && e->spec[k].region_blocks == s->region_blocks)
                same = &e->spec[k];
        if (same) {
            s->zetan = same->zetan;
            s->half_pow = same->half_pow;
            s->alpha = same->alpha;
            s->eta = same->eta;
        } else {
            zipf_init(s);
        }
    }
    return 0;
}

static int parse_run(PyObject *run, engine *e)
{
    int64_t v[10];
    static const char *keys[] = {"fd",        "op",           "wait_kind",      "jobs",    "bs",
                                 "region_start", "region_blocks", "runtime_ns", "ios_per_job",
                                 "log_cap"};
    for (int i = 0; i < 10; i++)
        if (get_i64(run, keys[i], &v[i]) < 0)
            return -1;
    int64_t seed, block_signals;
    if (get_i64(run, "seed", &seed) < 0 || opt_i64(run, "block_signals", 1, &block_signals) < 0 ||
        opt_i64(run, "fail_at", 0, &e->fail_at) < 0 ||
        opt_i64(run, "canary_ns", 0, &e->canary_ns) < 0 || opt_i64(run, "bins", 0, &e->nbins) < 0 ||
        opt_i64(run, "bin_ns", 0, &e->bin_ns) < 0 ||
        opt_i64(run, "waf_span", 0, &e->waf_span) < 0)
        return -1;
    e->fd = (int)v[0];
    e->op = (int)v[1];
    e->wait_kind = (int)v[2];
    e->jobs = (int)v[3];
    e->bs = v[4];
    e->region_start = v[5];
    e->region_blocks = v[6];
    e->runtime_ns = v[7];
    e->ios_per_job = v[8];
    e->log_cap = v[9];
    e->seed = seed;
    e->block_signals = block_signals != 0;
    if (e->jobs < 1 || e->jobs > 4096 || e->bs < 512 || e->bs % 512 || e->bs > (1 << 30) ||
        e->region_blocks < 1 || e->runtime_ns < 1 || e->log_cap < 0 || e->ios_per_job < 0 ||
        (e->op != 0 && e->op != 1) || e->fail_at < 0 || e->canary_ns < 0 ||
        e->canary_ns > 10000000000LL || e->nbins < 0 || e->nbins > (1 << 24) ||
        (e->nbins && e->bin_ns < 1) || e->waf_span < 0 || e->waf_span > (1 << 30) ||
        (e->waf_span && (e->waf_span < 512 || (e->waf_span & (e->waf_span - 1))))) {
        PyErr_SetString(PyExc_ValueError, "engine run: a value is out of range");
        return -1;
    }
    PyObject *cpus = PyDict_GetItemString(run, "cpus");
    if (cpus == NULL || !PyList_Check(cpus) || PyList_GET_SIZE(cpus) != e->jobs) {
        PyErr_SetString(PyExc_ValueError, "engine run: cpus must be a list, one CPU per job");
        return -1;
    }
    e->cpus = calloc((size_t)e->jobs, sizeof(int));
    if (!e->cpus) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < e->jobs; i++) {
        long c = PyLong_AsLong(PyList_GET_ITEM(cpus, i));
        if (c < 0 || c >= CPU_SETSIZE) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "engine run: a CPU number is out of range");
            return -1;
        }
        e->cpus[i] = (int)c;
    }
    return parse_specs(run, e) < 0 ? -1 : parse_fake(run, e);
}

static void engine_free(engine *e)
{
    if (e->job)
        for (int i = 0; i < e->jobs; i++) {
            free(e->job[i].hist);
            free(e->job[i].bins);
            free(e->job[i].log);
            free(e->job[i].residues);
        }
    free(e->job);
    free(e->spec);
    if (e->domains)
        for (int i = 0; i < e->ndomains; i++)
            pthread_mutex_destroy(&e->domains[i].lock);
    free(e->domains);
    free(e->cpus);
    free((void *)e->fake.device_ns);
    free((void *)e->fake.late_ns);
    if (e->policy)
        pol_free(e->policy);
    pthread_cond_destroy(&e->ended_cond);
    pthread_mutex_destroy(&e->ended_lock);
}

/* Whether job ``i`` may run on ``cpu``: its own, or one of an unpinned job's. */
static int may_run(const engine *e, int i, int cpu)
{
    const job_spec *s = &e->spec[i];
    return s->cpu == cpu || (s->nallowed && CPU_ISSET(cpu, &s->allowed));
}

static int max_cpu(const engine *e)
{
    int m = 0;
    for (int i = 0; i < e->jobs; i++)
        for (int c = m + 1; c < CPU_SETSIZE; c++)
            if (may_run(e, i, c))
                m = c;
    return m;
}

/* n zeroed elements of ``size`` bytes each on their own cache lines: jobs on different CPUs
 * must not share a line (false sharing would be a cost neither the kernel nor fio has). */
static void *cacheline_array(size_t n, size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, CACHELINE, n * size))
        return NULL;
    memset(p, 0, n * size);
    return p;
}

static int engine_prepare(engine *e, PyObject *policy_config)
{
    pol_config pc;
    pthread_condattr_t attr;
    pthread_mutex_init(&e->ended_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* a clock step cannot delay a stop */
    pthread_cond_init(&e->ended_cond, &attr);
    pthread_condattr_destroy(&attr);
    if (engine_config(policy_config, &pc) < 0)
        return -1;
    if (!e->spec) {
        e->spec = calloc((size_t)e->jobs, sizeof(job_spec));
        if (!e->spec) {
            PyErr_NoMemory();
            return -1;
        }
        for (int i = 0; i < e->jobs; i++)
            steady_spec(e, &e->spec[i], i);
    }
    e->method = pc.method;
    e->windowed = pc.method == POL_LHP || pc.method == POL_EHP;
    e->ndomains = max_cpu(e) + 1;
    e->policy = pol_new(&pc, e->ndomains);
    e->domains = cacheline_array((size_t)e->ndomains, sizeof(domain));
    e->job = cacheline_array((size_t)e->jobs, sizeof(job));
    if (!e->policy || !e->domains || !e->job) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < e->ndomains; i++)
        pthread_mutex_init(&e->domains[i].lock, NULL);
    for (int i = 0; i < e->jobs; i++) {
        job *j = &e->job[i];
        j->e = e;
        j->index = i;
        j->spec = e->spec[i];
        j->cpu = e->cpus[i];
        j->bucket = pol_bucket(&pc, j->spec.op, j->spec.bs);
        j->domain = &e->domains[pol_domain(e->policy, j->cpu)];
        j->irq.fd = j->poll.fd = -1;
        j->fake = e->fake;
        j->rng = (uint64_t)e->seed * 0x100000001b3ULL + (uint64_t)i + 1;
        j->hist = calloc(HIST_NR, sizeof(uint64_t));
        j->bins = e->nbins ? calloc((size_t)e->nbins * 2, sizeof(int64_t)) : NULL;
        j->log = e->log_cap ? malloc((size_t)e->log_cap * sizeof(io_log)) : NULL;
        j->residues = e->waf_span ? calloc((size_t)(e->waf_span >> 9), sizeof(int64_t)) : NULL;
        if (!j->hist || (e->nbins && !j->bins) || (e->log_cap && !j->log) ||
            (e->waf_span && !j->residues)) {
            PyErr_NoMemory();
            return -1;
        }
        /* touch the log's pages now: a page's first write would otherwise fault inside the
         * timed loop, one I/O in every page's worth of entries */
        if (j->log)
            memset(j->log, 0, (size_t)e->log_cap * sizeof(io_log));
        if (j->residues)
            memset(j->residues, 0, (size_t)(e->waf_span >> 9) * sizeof(int64_t));
    }
    return 0;
}

/* The signals some handler catches (Python's, a profiler's, a library's): the job threads
 * block them, so that they go to a thread that is not timing an I/O. Faults stay unblocked. */
static void handled_signals(sigset_t *set)
{
    sigemptyset(set);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
            sig == SIGSYS || sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, NULL, &sa) < 0)
            continue;
        if ((sa.sa_flags & SA_SIGINFO) || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
            sigaddset(set, sig);
    }
}

/* Threads inherit the creating thread's mask: block for the creation, then restore. */
static int start_jobs(engine *e)
{
    sigset_t block, old;
    int started = 0, err = 0;
    if (e->block_signals) {
        handled_signals(&block);
        pthread_sigmask(SIG_BLOCK, &block, &old);
    }
    for (; started < e->jobs; started++) {
        err = pthread_create(&e->job[started].thread, NULL, job_main, &e->job[started]);
        if (err)
            break;
        pthread_setname_np(e->job[started].thread, "dpas-job");
    }
    if (e->block_signals)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < e->jobs) {
        e->job[started].error = err;
        e->job[started].failed = "starting a job thread";
        atomic_store(&e->stop, 1);
    }
    return started;
}

/* ``marks(what)`` with the GIL: 0, or -1 with its exception. */
static int mark(PyObject *marks, const char *what)
{
    if (marks == Py_None)
        return 0;
    PyObject *r = PyObject_CallFunction(marks, "s", what);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Until every started job has ended, asking ``should_stop`` (with the GIL, every 20 ms)
 * whether a signal asked the run to end. 0, or -1 when should_stop raised. */
static int wait_jobs(engine *e, int started, PyObject *should_stop)
{
    int stop_error = 0;
    for (;;) {
        int all;
        Py_BEGIN_ALLOW_THREADS
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += 20000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&e->ended_lock);
        while (e->ended < started &&
               pthread_cond_timedwait(&e->ended_cond, &e->ended_lock, &deadline) != ETIMEDOUT) {
        }
        all = e->ended >= started;
        pthread_mutex_unlock(&e->ended_lock);
        Py_END_ALLOW_THREADS
        if (all)
            break;
        if (stop_error)
            continue;
        PyObject *r = PyObject_CallNoArgs(should_stop);
        int stop = r == NULL ? 1 : PyObject_IsTrue(r);
        if (r == NULL || stop < 0)
            stop_error = 1;
        if (stop)
            atomic_store(&e->stop, 1);
        Py_XDECREF(r);
    }
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < started; i++)
        pthread_join(e->job[i].thread, NULL);
    Py_END_ALLOW_THREADS
    return stop_error ? -1 : 0;
}

/* Start the jobs; they set up their rings first and start together, as fio's do. */
static int engine_go(engine *e, PyObject *should_stop, PyObject *marks)
{
    int started = start_jobs(e);
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&e->ready) < started)
        sleep_ns(100000);
    Py_END_ALLOW_THREADS
    int marked = mark(marks, "start");
    if (marked < 0)
        atomic_store(&e->stop, 1);
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    atomic_store_explicit(&e->go, 1, memory_order_release);
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (marked < 0)
        PyErr_Fetch(&type, &value, &tb); /* raised once the jobs have ended */
    int rc = wait_jobs(e, started, should_stop);
    if (marked < 0) {
        if (rc < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    } else if (rc == 0) {
        marked = mark(marks, "stop");
    }
    return rc < 0 || marked < 0 ? -1 : 0;
}

static PyObject *bytes_of(const void *p, size_t n) { return PyBytes_FromStringAndSize(p, (Py_ssize_t)n); }

static PyObject *job_result(const engine *e, const job *j)
{
    PyObject *hist = bytes_of(j->hist, HIST_NR * sizeof(uint64_t));
    PyObject *log = bytes_of(j->log, (size_t)j->logged * sizeof(io_log));
    PyObject *bins = bytes_of(j->bins, j->bins ? (size_t)e->nbins * 2 * sizeof(int64_t) : 0);
    PyObject *residues =
        bytes_of(j->residues, j->residues ? (size_t)(e->waf_span >> 9) * sizeof(int64_t) : 0);
    PyObject *r = Py_BuildValue(
        "{s:i,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:N,s:N,s:N,s:N,s:i,s:s,s:L,s:i}", "cpu",
        j->spec.cpu, "ios",
        j->ios, "elapsed_ns", j->elapsed_ns, "sleeps", j->sleeps, "overslept", j->overslept,
        "underslept", j->underslept, "lat_sum_ns", j->lat_sum_ns, "cpu_ns", j->cpu_ns,
        "ctx_voluntary", j->ctx_voluntary, "ctx_involuntary", j->ctx_involuntary, "hist", hist,
        "log", log, "bins", bins, "residues", residues, "error", j->error, "failed",
        j->failed ? j->failed : "", "canary_changed", j->canary_changed, "leaked", j->leaked);
    return r;
}

static PyObject *cpu_result(const engine *e, int cpu)
{
    int64_t s[9];
    if (pol_switch_stat(e->policy, cpu, s) < 0)
        Py_RETURN_NONE;
    PyObject *list = PyList_New(0);
    if (!list || append_transitions(list, e->policy, cpu) < 0) {
        Py_XDECREF(list);
        return NULL;
    }
    return Py_BuildValue("{s:(LLLL),s:i,s:L,s:L,s:L,s:L,s:N}", "totals", s[0], s[1], s[2], s[3],
                         "mode", (int)s[4], "qd", s[5], "qd_sum", s[6], "tf", s[7], "skipped", s[8],
                         "transitions", list);
}

static PyObject *engine_results(engine *e, double seconds)
{
    PyObject *jobs = PyList_New(e->jobs), *cpus = PyDict_New();
    if (!jobs || !cpus)
        goto error;
    for (int i = 0; i < e->jobs; i++) {
        PyObject *r = job_result(e, &e->job[i]);
        if (!r)
            goto error;
        PyList_SET_ITEM(jobs, i, r);
    }
    for (int c = 0; c < e->ndomains; c++) {
        int used = 0;
        for (int i = 0; i < e->jobs; i++)
            used |= may_run(e, i, c);
        if (!used)
            continue;
        PyObject *r = cpu_result(e, c), *key = PyLong_FromLong(c);
        if (!r || !key || PyDict_SetItem(cpus, key, r) < 0) {
            Py_XDECREF(r);
            Py_XDECREF(key);
            goto error;
        }
        Py_DECREF(r);
        Py_DECREF(key);
    }
    return Py_BuildValue("{s:N,s:N,s:d}", "jobs", jobs, "cpus", cpus, "seconds", seconds);
error:
    Py_XDECREF(jobs);
    Py_XDECREF(cpus);
    return NULL;
}

/* A job whose I/O could not be reaped keeps its buffer and rings; so must the engine's
 * arrays it points into: they are leaked on purpose, never freed under the device. */
static int any_leaked(const engine *e)
{
    for (int i = 0; e->job && i < e->jobs; i++)
        if (e->job[i].leaked)
            return 1;
    return 0;
}

static PyObject *engine_run(PyObject *self, PyObject *args)
{
    PyObject *run, *policy_config, *should_stop, *marks = Py_None;
    if (!PyArg_ParseTuple(args, "O!O!O|O", &PyDict_Type, &run, &PyDict_Type, &policy_config,
                          &should_stop, &marks))
        return NULL;
    if (!PyCallable_Check(should_stop) || (marks != Py_None && !PyCallable_Check(marks))) {
        PyErr_SetString(PyExc_TypeError, "engine run: should_stop and marks must be callable");
        return NULL;
    }
    engine *e = calloc(1, sizeof *e);
    if (!e)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    if (parse_run(run, e) == 0 && engine_prepare(e, policy_config) == 0) {
        int64_t a = mono_ns();
        int rc = engine_go(e, should_stop, marks);
        int64_t b = mono_ns();
        if (rc == 0)
            result = engine_results(e, (double)(b - a) / 1e9);
    }
    if (!any_leaked(e)) {
        engine_free(e);
        free(e);
    }
    return result;
}

/* ---- Python: the hot loop's bookkeeping alone, for benchmarks/engine_overhead.py ------------- */

static PyObject *engine_bookkeeping(PyObject *self, PyObject *args)
{
    PyObject *policy_config;
    long long n;
    int op;
    long long size;
    int real_sleep = 0;
    Py_buffer device = {0}, late = {0};
    if (!PyArg_ParseTuple(args, "O!Liy*y*|p", &PyDict_Type, &policy_config, &n, &op, &device,
                          &late, &real_sleep))
        return NULL;
    PyObject *result = NULL;
    engine *e = calloc(1, sizeof *e);
    int cpu0 = 0;
    size = 4096;
    if (!e) {
        PyErr_NoMemory();
        goto out;
    }
    if (n < 1 || device.len % 8 || late.len % 8 || (op != 0 && op != 1)) {
        PyErr_SetString(PyExc_ValueError,
                        "bookkeeping: n >= 1, op 0 or 1, scripts as bytes of int64");
        goto out;
    }
    /* the hot loop itself on the fake device, reading the real clock where it reads one:
     * every call, lock, clock read, counter and histogram of an I/O, without the device (and
     * with real_sleep, each sleep's clock_nanosleep too) */
    e->jobs = 1;
    e->cpus = &cpu0;
    e->op = op;
    e->bs = size;
    e->region_blocks = 1 << 20;
    e->runtime_ns = INT64_MAX;
    e->ios_per_job = n;
    e->device = DEV_FAKE;
    e->fake.device_ns = device.buf;
    e->fake.n_device = device.len / 8;
    e->fake.late_ns = late.buf;
    e->fake.n_late = late.len / 8;
    e->fake.clock_cost = 1;
    e->fake.real_sleep = real_sleep ? 2 : 0;
    if (engine_prepare(e, policy_config) == 0) {
        job *j = &e->job[0];
        int64_t a, b;
        int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        Py_BEGIN_ALLOW_THREADS
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* as a job thread sleeps */
        a = mono_ns();
        job_loop_fake(j);
        b = mono_ns();
        if (slack > 0)
            prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("{s:d,s:L,s:L,s:L}", "ns_per_io", (double)(b - a) / (double)n,
                               "sleeps", j->sleeps, "overslept", j->overslept, "underslept",
                               j->underslept);
    }
    e->cpus = NULL;
    e->fake.device_ns = e->fake.late_ns = NULL; /* Python's buffers */
    engine_free(e);
out:
    free(e);
    PyBuffer_Release(&device);
    PyBuffer_Release(&late);
    return result;
}

/* ---- Python: the loop's pacer alone, for the differential test ------------------------------ */

/* pace(pattern, end_ns, calls): calls are (0, now) for next_at(now) and (1, at) for
 * issued(at); per call (answer or -1, epoch_start, in_epoch, count, first) after it. */
static PyObject *engine_pace(PyObject *self, PyObject *args)
{
    PyObject *pat, *calls;
    long long end_ns;
    pattern p;
    pacer pc;
    if (!PyArg_ParseTuple(args, "OLO!", &pat, &end_ns, &PyList_Type, &calls) ||
        parse_pattern(pat, &p) < 0)
        return NULL;
    if ((p.on_ns == 0 && p.off_ns != 0) || end_ns < 0) {
        PyErr_SetString(PyExc_ValueError, "pace: off_ns needs on_ns; end_ns >= 0");
        return NULL;
    }
    pacer_init(&pc, &p, end_ns);
    PyObject *out = PyList_New(PyList_GET_SIZE(calls));
    for (Py_ssize_t i = 0; out && i < PyList_GET_SIZE(calls); i++) {
        int kind;
        long long now, answer = -1;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(calls, i), "iL", &kind, &now) || now < 0 ||
            (kind != 0 && kind != 1)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "pace: a call is (0 or 1, ns >= 0)");
            Py_CLEAR(out);
            break;
        }
        if (kind == 0)
            answer = pacer_next_at(&pc, now);
        else
            pacer_issued(&pc, now);
        PyObject *r = Py_BuildValue("(LLLLL)", answer, pc.epoch_start, pc.in_epoch, pc.count,
                                    pc.first);
        if (!r)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, r);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"run", engine_run, METH_VARARGS,
     "run(run: dict, policy: dict, should_stop: callable, marks=None) -> dict: the jobs, on "
     "native threads"},
    {"replay", engine_replay, METH_VARARGS,
     "replay(policy: dict, events, ncpus) -> the policy core's decisions for the events"},
    {"bookkeeping", engine_bookkeeping, METH_VARARGS,
     "bookkeeping(policy: dict, n, op, device_ns: bytes, late_ns: bytes, real_sleep=False) -> "
     "the hot loop's cost per I/O on the fake device, and its verdicts"},
    {"pace", engine_pace, METH_VARARGS,
     "pace(pattern: dict, end_ns, calls: list of (0, now) or (1, at)) -> the pacer's answers and "
     "state after each call"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dpas.engine._engine",
    "The userspace completion engine's compiled hot loop (see dpas.engine).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "HIST_BITS", HIST_BITS) < 0 ||
        PyModule_AddIntConstant(m, "HIST_NR", HIST_NR) < 0 ||
        PyModule_AddIntConstant(m, "LOG_SIZE", (long)sizeof(io_log)) < 0 ||
        PyModule_AddIntConstant(m, "LOG_POLLED", LOG_POLLED) < 0 ||
        PyModule_AddIntConstant(m, "LOG_SLEPT", LOG_SLEPT) < 0 ||
        PyModule_AddIntConstant(m, "LOG_FOUND_FIRST", LOG_FOUND_FIRST) < 0 ||
        PyModule_AddIntConstant(m, "LOG_BOUNDARY", LOG_BOUNDARY) < 0 ||
        PyModule_AddIntConstant(m, "NEVER", NEVER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
