/* dpas.engine._engine: the userspace completion engine's hot loop.
 *
 * One native thread per job does synchronous I/O at depth 1 with O_DIRECT at random
 * block-aligned offsets, pinned to its CPU, and waits as its mode says:
 *   INT   an interrupt-driven ring: io_uring_enter(1 submitted, wait for 1);
 *   CP    an IOPOLL ring: the kernel spins until the completion;
 *   HYB   an IOPOLL|HYBRID_IOPOLL ring: the kernel sleeps, then spins (6.13+);
 *   LHP, EHP, PAS, DPAS: the policy core (policy_core.c, the compiled copy of dpas.policy)
 *         decides per I/O: the interrupt ring, or the IOPOLL ring with a sleep first
 *         (clock_nanosleep), one non-spinning poll pass, then spinning. Found on that first
 *         pass = overslept: the policy's feedback.
 * The threads never take Python's GIL. Policy events of one state domain (a CPU's state for
 * PAS and DPAS, the shared statistics for LHP and EHP) run under that domain's mutex, one
 * event at a time, so every decision can be replayed through dpas.policy from the log.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
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

#ifndef IORING_SETUP_HYBRID_IOPOLL
#define IORING_SETUP_HYBRID_IOPOLL (1U << 17) /* 6.13; older uapi headers lack it */
#endif

/* fio's latency histogram layout: 64 buckets per power of two, 29 groups (~1.6% error) */
#define HIST_BITS 6
#define HIST_VAL (1 << HIST_BITS)
#define HIST_GROUPS 29
#define HIST_NR (HIST_GROUPS * HIST_VAL)

enum wait_kind { WAIT_POLICY = 0, WAIT_HYBRID = 1 };
enum log_flag { LOG_POLLED = 1, LOG_SLEPT = 2, LOG_FOUND_FIRST = 4 };

/* One I/O of the per-I/O log: what the policy decided and what the poll found. */
typedef struct {
    int64_t submit_ns, wait_start_ns, wait_end_ns, done_ns; /* from the run's start */
    int64_t sleep_ns;
    uint32_t seq[4]; /* the domain's event numbers of submit, wait_start, wait_end, complete */
    int16_t cpu;
    int8_t mode;   /* DPAS: the CPU's mode at submission; -1 otherwise */
    uint8_t flags; /* enum log_flag */
    int32_t dur_cnt;
} io_log;

typedef struct {
    int fd;
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
} domain;

struct engine;

typedef struct {
    struct engine *e;
    int index, cpu;
    pthread_t thread;
    /* results */
    int64_t ios, sleeps, overslept, underslept;
    int64_t lat_sum_ns, cpu_ns, ctx_voluntary, ctx_involuntary;
    uint64_t *hist;
    io_log *log;
    int64_t logged;
    int64_t elapsed_ns; /* the start of the I/Os to this job's end */
    int error;           /* errno of the first failure, 0 if none */
    const char *failed;  /* what failed */
} job;

typedef struct engine {
    /* config */
    int fd, op, wait_kind, method, jobs;
    int64_t bs, region_start, region_blocks, runtime_ns, ios_per_job, log_cap, seed;
    int *cpus;
    pol_policy *policy;
    domain *domains;
    int ndomains;
    /* run: the jobs count themselves ready, then wait for go */
    atomic_int ready, go, stop;
    struct timespec t0;
    job *job;
} engine;

/* ---- clocks -------------------------------------------------------------------------------- */

static inline int64_t ts_ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static inline int64_t now_ns(const engine *e)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return ts_ns(&t) - ts_ns(&e->t0);
}

static void sleep_ns(int64_t ns)
{
    struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR) {
    }
}

/* ---- io_uring by raw system calls, as fio's engine speaks to it ------------------------------ */

static int ring_setup(ring *r, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    memset(r, 0, sizeof *r);
    p.flags = flags;
    r->fd = (int)syscall(__NR_io_uring_setup, 2, &p);
    if (r->fd < 0)
        return -errno;
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
    munmap(r->sqes, r->sqes_len);
    munmap(r->cq_ptr, r->cq_len);
    munmap(r->sq_ptr, r->sq_len);
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

static inline int enter(ring *r, unsigned submit, unsigned min_complete, unsigned flags)
{
    int ret = (int)syscall(__NR_io_uring_enter, r->fd, submit, min_complete, flags, NULL, 0);
    return ret < 0 ? -errno : ret;
}

/* The completion if one is queued: 1 and its result in *res, else 0. */
static inline int reap(ring *r, int *res)
{
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return 0;
    *res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

/* Submit one I/O and wait for it in the kernel (INT: the interrupt; CP, HYB: polling). */
static int submit_and_wait(ring *r, int *res)
{
    int ret = enter(r, 1, 1, IORING_ENTER_GETEVENTS);
    while (ret >= 0 && !reap(r, res))
        ret = enter(r, 0, 1, IORING_ENTER_GETEVENTS);
    return ret < 0 ? ret : 0;
}

/* After the sleep: one non-spinning pass (min_complete 0), then spin if it found nothing.
 * The CQ is looked at first: with a completion already queued the kernel would not poll. */
static int poll_after_sleep(ring *r, int *res, int *found_first)
{
    *found_first = 1;
    if (reap(r, res))
        return 0;
    int ret = enter(r, 0, 0, IORING_ENTER_GETEVENTS);
    if (ret < 0)
        return ret;
    if (reap(r, res))
        return 0;
    *found_first = 0;
    while (!reap(r, res)) {
        ret = enter(r, 0, 1, IORING_ENTER_GETEVENTS);
        if (ret < 0)
            return ret;
    }
    return 0;
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

/* ---- one job --------------------------------------------------------------------------------- */

static inline uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint32_t locked_seq(domain *d) { return d->seq++; }

static void fail(job *j, int err, const char *what)
{
    if (!j->error) {
        j->error = err;
        j->failed = what;
    }
    atomic_store(&j->e->stop, 1);
}

/* The wait of one I/O on the policy's terms; returns 0 or -errno. */
static int policy_io(job *j, ring *irq, ring *poll, void *buf, uint64_t offset, io_log *entry)
{
    engine *e = j->e;
    pol_io io;
    int res = 0, found_first = 0, ret;
    int cpu = j->cpu;
    domain *d = &e->domains[pol_domain(e->policy, cpu)];

    int64_t t_submit = now_ns(e);
    pthread_mutex_lock(&d->lock);
    entry->seq[0] = locked_seq(d);
    pol_submit(e->policy, &io, cpu, e->op, e->bs, t_submit);
    pthread_mutex_unlock(&d->lock);
    entry->submit_ns = t_submit;
    entry->cpu = (int16_t)cpu;
    entry->mode = (int8_t)io.mode;
    entry->sleep_ns = 0;
    entry->flags = 0;
    if (!io.polled) {
        ring_queue(irq, e->op, e->fd, buf, (unsigned)e->bs, offset);
        ret = submit_and_wait(irq, &res);
        entry->wait_start_ns = entry->wait_end_ns = 0;
        entry->seq[1] = entry->seq[2] = 0;
    } else {
        entry->flags |= LOG_POLLED;
        ring_queue(poll, e->op, e->fd, buf, (unsigned)e->bs, offset);
        ret = enter(poll, 1, 0, 0);
        if (ret < 0)
            return ret;
        int64_t t_wait = now_ns(e);
        pthread_mutex_lock(&d->lock);
        entry->seq[1] = locked_seq(d);
        int64_t sleep = pol_wait_start(e->policy, &io, t_wait);
        pthread_mutex_unlock(&d->lock);
        entry->wait_start_ns = t_wait;
        entry->sleep_ns = sleep;
        if (sleep > 0) {
            sleep_ns(sleep);
            j->sleeps++;
            entry->flags |= LOG_SLEPT;
        }
        int64_t t_woke = now_ns(e);
        pthread_mutex_lock(&d->lock);
        entry->seq[2] = locked_seq(d);
        pol_wait_end(e->policy, &io, t_woke);
        pthread_mutex_unlock(&d->lock);
        entry->wait_end_ns = t_woke;
        if (sleep > 0) {
            ret = poll_after_sleep(poll, &res, &found_first);
            if (found_first)
                j->overslept++;
            else
                j->underslept++;
        } else {
            ret = 0;
            while (ret >= 0 && !reap(poll, &res))
                ret = enter(poll, 0, 1, IORING_ENTER_GETEVENTS);
            ret = ret < 0 ? ret : 0;
        }
    }
    if (ret < 0)
        return ret;
    int64_t t_done = now_ns(e);
    pthread_mutex_lock(&d->lock);
    entry->seq[3] = locked_seq(d);
    pol_complete(e->policy, &io, t_done, found_first, cpu);
    pthread_mutex_unlock(&d->lock);
    if (found_first)
        entry->flags |= LOG_FOUND_FIRST;
    entry->dur_cnt = io.dur_cnt;
    entry->done_ns = t_done;
    if (res < 0)
        return res;
    if (res != e->bs)
        return -EIO; /* a short transfer: the target ended inside the region */
    return 0;
}

/* INT, CP and HYB: the kernel waits; nothing to decide. */
static int kernel_io(job *j, ring *r, void *buf, uint64_t offset, io_log *entry)
{
    engine *e = j->e;
    int res = 0;
    memset(entry, 0, sizeof *entry);
    entry->submit_ns = now_ns(e);
    ring_queue(r, e->op, e->fd, buf, (unsigned)e->bs, offset);
    int ret = submit_and_wait(r, &res);
    entry->done_ns = now_ns(e);
    entry->cpu = (int16_t)j->cpu;
    entry->mode = -1;
    entry->flags = e->method == POL_INT ? 0 : LOG_POLLED;
    entry->sleep_ns = 0;
    if (ret < 0)
        return ret;
    if (res < 0)
        return res;
    return res == e->bs ? 0 : -EIO;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return ts_ns(&t);
}

static void *job_main(void *arg)
{
    job *j = arg;
    engine *e = j->e;
    ring irq = {.fd = -1}, poll = {.fd = -1};
    void *buf = NULL;
    int ret;
    uint64_t rng = (uint64_t)e->seed * 0x100000001b3ULL + (uint64_t)j->index + 1;

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set))
        fail(j, EINVAL, "pinning the job to its CPU");
    /* microsecond sleeps: the default 50 us of slack would swamp them */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (posix_memalign(&buf, 4096, (size_t)e->bs))
        fail(j, ENOMEM, "allocating the I/O buffer");
    else
        for (int64_t i = 0; i < e->bs; i += 8)
            *(uint64_t *)((char *)buf + i) = splitmix(&rng);
    int needs_irq = e->method == POL_INT || e->method == POL_EHP || e->method == POL_DPAS;
    int needs_poll = e->method != POL_INT || e->wait_kind == WAIT_HYBRID;
    if (!j->error && needs_irq && (ret = ring_setup(&irq, 0)) < 0)
        fail(j, -ret, "setting up an io_uring");
    unsigned poll_flags = IORING_SETUP_IOPOLL;
    if (e->wait_kind == WAIT_HYBRID)
        poll_flags |= IORING_SETUP_HYBRID_IOPOLL;
    if (!j->error && needs_poll && (ret = ring_setup(&poll, poll_flags)) < 0)
        fail(j, -ret, e->wait_kind == WAIT_HYBRID ? "setting up an IOPOLL|HYBRID_IOPOLL io_uring"
                                                  : "setting up an IOPOLL io_uring");
    atomic_fetch_add(&e->ready, 1);
    while (!atomic_load_explicit(&e->go, memory_order_acquire))
        sleep_ns(50000);

    struct rusage before, after;
    getrusage(RUSAGE_THREAD, &before);
    int64_t cpu0 = thread_cpu_ns();
    io_log scratch;
    while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
        uint64_t offset = (uint64_t)(e->region_start + (int64_t)(splitmix(&rng) % (uint64_t)e->region_blocks) * e->bs);
        io_log *entry = j->logged < e->log_cap ? &j->log[j->logged] : &scratch;
        if (e->wait_kind == WAIT_HYBRID || e->method == POL_INT || e->method == POL_CP)
            ret = kernel_io(j, e->method == POL_INT && e->wait_kind != WAIT_HYBRID ? &irq : &poll,
                            buf, offset, entry);
        else
            ret = policy_io(j, &irq, &poll, buf, offset, entry);
        if (ret < 0) {
            fail(j, -ret, "an I/O");
            break;
        }
        int64_t lat = entry->done_ns - entry->submit_ns;
        j->lat_sum_ns += lat;
        j->hist[hist_index((uint64_t)(lat > 0 ? lat : 0))]++;
        j->ios++;
        if (entry != &scratch)
            j->logged++;
        if (entry->done_ns >= e->runtime_ns || (e->ios_per_job && j->ios >= e->ios_per_job))
            break;
    }
    j->elapsed_ns = now_ns(e);
    j->cpu_ns = thread_cpu_ns() - cpu0;
    getrusage(RUSAGE_THREAD, &after);
    j->ctx_voluntary = after.ru_nvcsw - before.ru_nvcsw;
    j->ctx_involuntary = after.ru_nivcsw - before.ru_nivcsw;
    ring_close(&irq);
    ring_close(&poll);
    free(buf);
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

static int parse_run(PyObject *run, engine *e)
{
    int64_t v[10];
    static const char *keys[] = {"fd",        "op",           "wait_kind",      "jobs",    "bs",
                                 "region_start", "region_blocks", "runtime_ns", "ios_per_job",
                                 "log_cap"};
    for (int i = 0; i < 10; i++)
        if (get_i64(run, keys[i], &v[i]) < 0)
            return -1;
    int64_t seed;
    if (get_i64(run, "seed", &seed) < 0)
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
    if (e->jobs < 1 || e->jobs > 4096 || e->bs < 512 || e->bs % 512 || e->region_blocks < 1 ||
        e->runtime_ns < 1 || e->log_cap < 0 || e->ios_per_job < 0 || (e->op != 0 && e->op != 1)) {
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
    return 0;
}

static void engine_free(engine *e)
{
    if (e->job)
        for (int i = 0; i < e->jobs; i++) {
            free(e->job[i].hist);
            free(e->job[i].log);
        }
    free(e->job);
    if (e->domains)
        for (int i = 0; i < e->ndomains; i++)
            pthread_mutex_destroy(&e->domains[i].lock);
    free(e->domains);
    free(e->cpus);
    if (e->policy)
        pol_free(e->policy);
}

static int max_cpu(const engine *e)
{
    int m = 0;
    for (int i = 0; i < e->jobs; i++)
        if (e->cpus[i] > m)
            m = e->cpus[i];
    return m;
}

static int engine_prepare(engine *e, PyObject *policy_config)
{
    pol_config pc;
    if (engine_config(policy_config, &pc) < 0)
        return -1;
    e->method = pc.method;
    e->ndomains = max_cpu(e) + 1;
    e->policy = pol_new(&pc, e->ndomains);
    e->domains = calloc((size_t)e->ndomains, sizeof(domain));
    e->job = calloc((size_t)e->jobs, sizeof(job));
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
        j->cpu = e->cpus[i];
        j->hist = calloc(HIST_NR, sizeof(uint64_t));
        j->log = e->log_cap ? malloc((size_t)e->log_cap * sizeof(io_log)) : NULL;
        if (!j->hist || (e->log_cap && !j->log)) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

/* Start the jobs and wait for them with the GIL released, asking ``should_stop`` (with the
 * GIL, every 20 ms) whether a signal asked the run to end. The jobs set up their rings first
 * and start together, as fio's do. */
static int engine_go(engine *e, PyObject *should_stop)
{
    int started = 0;
    for (; started < e->jobs; started++)
        if (pthread_create(&e->job[started].thread, NULL, job_main, &e->job[started]))
            break;
    if (started < e->jobs) {
        e->job[started].error = EAGAIN;
        e->job[started].failed = "starting a job thread";
        atomic_store(&e->stop, 1);
    }
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&e->ready) < started)
        sleep_ns(100000);
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    atomic_store_explicit(&e->go, 1, memory_order_release);
    Py_END_ALLOW_THREADS
    int stop_error = 0;
    for (int i = 0; i < started; i++) {
        for (;;) {
            struct timespec deadline;
            int done;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += 20000000;
            if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
            }
            Py_BEGIN_ALLOW_THREADS
            done = pthread_timedjoin_np(e->job[i].thread, NULL, &deadline) == 0;
            Py_END_ALLOW_THREADS
            if (done)
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
    }
    return stop_error ? -1 : 0;
}

static PyObject *bytes_of(const void *p, size_t n) { return PyBytes_FromStringAndSize(p, (Py_ssize_t)n); }

static PyObject *job_result(const engine *e, const job *j)
{
    PyObject *hist = bytes_of(j->hist, HIST_NR * sizeof(uint64_t));
    PyObject *log = bytes_of(j->log, (size_t)j->logged * sizeof(io_log));
    PyObject *r = Py_BuildValue(
        "{s:i,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:N,s:N,s:i,s:s}", "cpu", j->cpu, "ios", j->ios,
        "elapsed_ns", j->elapsed_ns,
        "sleeps", j->sleeps, "overslept", j->overslept, "underslept", j->underslept, "lat_sum_ns",
        j->lat_sum_ns, "cpu_ns", j->cpu_ns, "ctx_voluntary", j->ctx_voluntary, "ctx_involuntary",
        j->ctx_involuntary, "hist", hist, "log", log, "error", j->error, "failed",
        j->failed ? j->failed : "");
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
            used |= e->cpus[i] == c;
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

static PyObject *engine_run(PyObject *self, PyObject *args)
{
    PyObject *run, *policy_config, *should_stop;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyDict_Type, &run, &PyDict_Type, &policy_config,
                          &should_stop))
        return NULL;
    if (!PyCallable_Check(should_stop)) {
        PyErr_SetString(PyExc_TypeError, "engine run: should_stop must be callable");
        return NULL;
    }
    engine e;
    memset(&e, 0, sizeof e);
    PyObject *result = NULL;
    if (parse_run(run, &e) == 0 && engine_prepare(&e, policy_config) == 0) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = engine_go(&e, should_stop);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc == 0)
            result = engine_results(&e, (double)(ts_ns(&b) - ts_ns(&a)) / 1e9);
    }
    engine_free(&e);
    return result;
}

/* ---- Python: the hot loop's bookkeeping alone, for benchmarks/engine_overhead.py ------------- */

static PyObject *engine_bookkeeping(PyObject *self, PyObject *args)
{
    PyObject *policy_config;
    long long n;
    int op;
    long long size;
    if (!PyArg_ParseTuple(args, "O!LiL", &PyDict_Type, &policy_config, &n, &op, &size))
        return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "bookkeeping: n must be >= 1");
        return NULL;
    }
    engine e;
    memset(&e, 0, sizeof e);
    int cpu0 = 0;
    e.jobs = 1;
    e.cpus = &cpu0;
    e.log_cap = 0;
    if (engine_prepare(&e, policy_config) < 0) {
        e.cpus = NULL;
        engine_free(&e);
        return NULL;
    }
    job *j = &e.job[0];
    domain *d = &e.domains[0];
    uint64_t rng = 1;
    io_log entry;
    clock_gettime(CLOCK_MONOTONIC, &e.t0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    Py_BEGIN_ALLOW_THREADS
    for (long long i = 0; i < n; i++) {
        /* the same calls, locks, clock reads and counters as policy_io, with the device and the
         * sleep left out: the feedback alternates in runs so that PAS keeps adapting */
        pol_io io;
        int found = (splitmix(&rng) >> 60) < 9;
        entry.submit_ns = now_ns(&e);
        pthread_mutex_lock(&d->lock);
        entry.seq[0] = locked_seq(d);
        pol_submit(e.policy, &io, 0, op, size, entry.submit_ns);
        pthread_mutex_unlock(&d->lock);
        if (io.polled) {
            entry.wait_start_ns = now_ns(&e);
            pthread_mutex_lock(&d->lock);
            entry.seq[1] = locked_seq(d);
            entry.sleep_ns = pol_wait_start(e.policy, &io, entry.wait_start_ns);
            pthread_mutex_unlock(&d->lock);
            entry.wait_end_ns = now_ns(&e);
            pthread_mutex_lock(&d->lock);
            entry.seq[2] = locked_seq(d);
            pol_wait_end(e.policy, &io, entry.wait_end_ns);
            pthread_mutex_unlock(&d->lock);
            if (found)
                j->overslept++;
            else
                j->underslept++;
        }
        entry.done_ns = now_ns(&e);
        pthread_mutex_lock(&d->lock);
        entry.seq[3] = locked_seq(d);
        pol_complete(e.policy, &io, entry.done_ns, found, 0);
        pthread_mutex_unlock(&d->lock);
        int64_t lat = entry.done_ns - entry.submit_ns;
        j->lat_sum_ns += lat;
        j->hist[hist_index((uint64_t)(lat > 0 ? lat : 0))]++;
        j->ios++;
    }
    Py_END_ALLOW_THREADS
    clock_gettime(CLOCK_MONOTONIC, &b);
    e.cpus = NULL;
    engine_free(&e);
    return PyFloat_FromDouble((double)(ts_ns(&b) - ts_ns(&a)) / (double)n);
}

static PyMethodDef methods[] = {
    {"run", engine_run, METH_VARARGS,
     "run(run: dict, policy: dict, should_stop: callable) -> dict: the jobs, on native threads"},
    {"replay", engine_replay, METH_VARARGS,
     "replay(policy: dict, events, ncpus) -> the policy core's decisions for the events"},
    {"bookkeeping", engine_bookkeeping, METH_VARARGS,
     "bookkeeping(policy: dict, n, op, size) -> ns per I/O of the hot loop's decisions alone"},
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
        PyModule_AddIntConstant(m, "LOG_FOUND_FIRST", LOG_FOUND_FIRST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
