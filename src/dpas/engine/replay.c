/* engine_config(): a policy config from Python; engine_replay(): the policy core driven by an
 * array of events, so that tests can hold its decisions against dpas.policy's
 * (dpas.engine.rules.replay_reference) event for event. */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

enum { KIND_SUBMIT, KIND_WAIT_START, KIND_WAIT_END, KIND_COMPLETE };
enum { COL_KIND, COL_IO, COL_CPU, COL_OP, COL_SIZE, COL_NOW, COL_FOUND, COL_SEEN, NCOLS };

#define MAX_CPUS (1 << 16)

/* ---- the config ------------------------------------------------------------------------- */

/* mapping[key] as an int64 within [lo, hi]; 0, or -1 with an exception naming the key */
static int config_int(PyObject *mapping, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    PyObject *v = PyMapping_GetItemString(mapping, key);
    if (!v) {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_KeyError, "policy config: no %s", key);
        }
        return -1;
    }
    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "policy config %s: expected an int, got %s", key,
                     Py_TYPE(v)->tp_name);
        Py_DECREF(v);
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow || x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "policy config %s: out of range %lld..%lld", key,
                     (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* the knobs of one method that only that method checks (make_policy() builds only it) */
static int config_method_ranges(const pol_config *c)
{
    const char *key = NULL;
    if (c->method == POL_LHP) {
        if (c->io_poll_delay < 0 || c->io_poll_delay > INT64_MAX / 1000)
            key = "io_poll_delay";
        else if (c->lhp_window_ns <= 0)
            key = "lhp_window_ns";
    } else if (c->method == POL_EHP) {
        /* dpas.policy accepts negative EHP costs; a negative cost means nothing, and
         * refusing it keeps every EHP sleep within int64 */
        if (c->ehp_ctx_ns < 0)
            key = "ehp_ctx_ns";
        else if (c->ehp_isr_ns < 0)
            key = "ehp_isr_ns";
        else if (c->ehp_benefit_ratio < 0)
            key = "ehp_benefit_ratio";
        else if (c->ehp_window_ns <= 0)
            key = "ehp_window_ns";
    }
    if (key) {
        PyErr_Format(PyExc_ValueError, "policy config %s: out of range for method %d", key,
                     c->method);
        return -1;
    }
    return 0;
}

int engine_config(PyObject *mapping, pol_config *out)
{
    pol_config c;
    int64_t v[6];
    memset(&c, 0, sizeof c);
    if (config_int(mapping, "method", 0, 5, &v[0]) < 0 ||
        config_int(mapping, "adaptive", 0, 2, &v[1]) < 0 ||
        config_int(mapping, "order_guide", 0, 1, &v[2]) < 0 ||
        config_int(mapping, "stats_sectors_bug", 0, 1, &v[3]) < 0 ||
        config_int(mapping, "queue_stats", 0, 1, &v[4]) < 0)
        return -1;
    c.method = (int)v[0];
    c.adaptive = (int)v[1];
    c.order_guide = (int)v[2];
    c.stats_sectors_bug = (int)v[3];
    c.queue_stats = (int)v[4];
    struct {
        const char *key;
        int64_t lo, *field;
    } knobs[] = {
        {"d_init", 0, &c.d_init},           {"up_init", 0, &c.up_init},
        {"dn_init", 0, &c.dn_init},         {"heat_up", 0, &c.heat_up},
        {"cool_dn", 0, &c.cool_dn},         {"min_dn", 0, &c.min_dn},
        {"max_dn", 0, &c.max_dn},           {"updn_ratio", 1, &c.updn_ratio},
        {"param1", -1, &c.param[1]},        {"param2", -1, &c.param[2]},
        {"param3", -1, &c.param[3]},        {"param4", -1, &c.param[4]},
        {"param5", -1, &c.param[5]},        {"param6", -1, &c.param[6]},
        {"param7", -1, &c.param[7]},        {"io_poll_delay", INT64_MIN, &c.io_poll_delay},
        {"lhp_window_ns", INT64_MIN, &c.lhp_window_ns},
        {"ehp_ctx_ns", INT64_MIN, &c.ehp_ctx_ns},
        {"ehp_isr_ns", INT64_MIN, &c.ehp_isr_ns},
        {"ehp_benefit_ratio", INT64_MIN, &c.ehp_benefit_ratio},
        {"ehp_window_ns", INT64_MIN, &c.ehp_window_ns},
    };
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++)
        if (config_int(mapping, knobs[i].key, knobs[i].lo, INT64_MAX, knobs[i].field) < 0)
            return -1;
    if (config_method_ranges(&c) < 0)
        return -1;
    *out = c;
    return 0;
}

/* ---- the events ------------------------------------------------------------------------- */

/* events as n x 8 int64, C-contiguous; 0, or -1 with an exception */
static int events_view(PyObject *events, Py_buffer *view)
{
    if (PyObject_GetBuffer(events, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    int int64 = view->itemsize == 8 && (strcmp(f, "q") == 0 || strcmp(f, "l") == 0);
    if (!int64 || view->ndim != 2 || view->shape[1] != NCOLS) {
        PyErr_Format(PyExc_ValueError,
                     "events: expected a C-contiguous int64 array of shape (n, %d), got format "
                     "'%s', itemsize %zd, %d dimension(s)",
                     NCOLS, view->format ? view->format : "B", view->itemsize, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Checks one event's columns; NULL if fine, else what is wrong. */
static const char *event_error(const int64_t *e, Py_ssize_t n, int ncpus)
{
    if (e[COL_KIND] < KIND_SUBMIT || e[COL_KIND] > KIND_COMPLETE)
        return "kind: expected 0 submit, 1 wait_start, 2 wait_end or 3 complete";
    if (e[COL_IO] < 0 || e[COL_IO] >= n)
        return "io: expected an id in 0..n_events-1";
    if (e[COL_NOW] < 0)
        return "now_ns: expected >= 0";
    if (e[COL_KIND] == KIND_SUBMIT) {
        if (e[COL_CPU] < 0 || e[COL_CPU] >= ncpus)
            return "cpu: expected 0..ncpus-1";
        if (e[COL_OP] != 0 && e[COL_OP] != 1)
            return "op: expected 0 (read) or 1 (write)";
        if (e[COL_SIZE] < 0)
            return "size: expected bytes >= 0";
    }
    if (e[COL_KIND] == KIND_COMPLETE) {
        if (e[COL_FOUND] != 0 && e[COL_FOUND] != 1)
            return "found: expected 0 or 1";
        if (e[COL_SEEN] < 0 || e[COL_SEEN] >= ncpus)
            return "seen_cpu: expected 0..ncpus-1";
    }
    return NULL;
}

/* Validates every event; *n_ios receives the largest io id + 1. */
static int events_check(const int64_t *ev, Py_ssize_t n, int ncpus, Py_ssize_t *n_ios)
{
    *n_ios = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *e = ev + i * NCOLS;
        const char *err = event_error(e, n, ncpus);
        if (err) {
            PyErr_Format(PyExc_ValueError, "event %zd (kind %lld, io %lld): %s", i,
                         (long long)e[COL_KIND], (long long)e[COL_IO], err);
            return -1;
        }
        if (e[COL_IO] >= *n_ios)
            *n_ios = (Py_ssize_t)e[COL_IO] + 1;
    }
    return 0;
}

/* One event; writes its output row. A wait event of an I/O that was not polled is skipped
 * (its row stays zero): a caller waits only for polled I/Os. */
static void replay_one(pol_policy *p, pol_io *io, const int64_t *e, int64_t *row)
{
    switch (e[COL_KIND]) {
    case KIND_SUBMIT:
        pol_submit(p, io, (int)e[COL_CPU], (int)e[COL_OP], e[COL_SIZE], e[COL_NOW]);
        row[0] = io->polled;
        row[1] = io->mode;
        row[2] = io->bucket;
        break;
    case KIND_WAIT_START:
        if (!io->polled)
            break;
        row[0] = pol_wait_start(p, io, e[COL_NOW]);
        row[1] = io->dur_cnt;
        row[2] = pol_mode(p, io->cpu);
        row[3] = io->updated ? io->update_case : -1;
        break;
    case KIND_WAIT_END: {
        if (!io->polled)
            break;
        int64_t s[9];
        pol_wait_end(p, io, e[COL_NOW]);
        row[0] = pol_switch_stat(p, io->cpu, s) == 0 ? s[5] : 0;
        break;
    }
    default:
        pol_complete(p, io, e[COL_NOW], (int)e[COL_FOUND], (int)e[COL_SEEN]);
        break;
    }
}

/* Runs the events; -1 - i when event i touches an I/O before its submit. Needs no GIL. */
static Py_ssize_t replay_run(pol_policy *p, const int64_t *ev, Py_ssize_t n, pol_io *ios,
                             unsigned char *submitted, int64_t *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *e = ev + i * NCOLS;
        int64_t id = e[COL_IO];
        if (e[COL_KIND] == KIND_SUBMIT)
            submitted[id] = 1;
        else if (!submitted[id])
            return -1 - i;
        replay_one(p, &ios[id], e, out + i * 4);
    }
    return 0;
}

/* ---- the results ------------------------------------------------------------------------- */

static PyObject *switch_stats(const pol_policy *p, int ncpus)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)ncpus * 9 * 8);
    if (!b)
        return NULL;
    int64_t *s = (int64_t *)PyBytes_AS_STRING(b);
    for (int cpu = 0; cpu < ncpus; cpu++)
        if (pol_switch_stat(p, cpu, s + cpu * 9) < 0)
            memset(s + cpu * 9, 0, 9 * 8);
    return b;
}

int append_transitions(PyObject *list, const pol_policy *p, int cpu)
{
    int64_t n = 0;
    const pol_transition *t = pol_transitions(p, cpu, &n);
    for (int64_t i = 0; i < n; i++) {
        PyObject *item = Py_BuildValue("(LiiiLLL)", t[i].now_ns, t[i].cpu, t[i].old_mode,
                                       t[i].new_mode, t[i].count, t[i].avg_qd, t[i].tf);
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            return -1;
        }
        Py_DECREF(item);
    }
    return 0;
}

static PyObject *transitions(const pol_policy *p, int ncpus)
{
    if (pol_transitions_dropped(p))
        return PyErr_NoMemory();
    PyObject *list = PyList_New(0);
    for (int cpu = 0; list && cpu < ncpus; cpu++)
        if (append_transitions(list, p, cpu) < 0)
            Py_CLEAR(list);
    return list;
}

static PyObject *pas_states(const pol_policy *p, int ncpus)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)ncpus * POL_BUCKETS * 9 * 8);
    if (!b)
        return NULL;
    int64_t *s = (int64_t *)PyBytes_AS_STRING(b);
    for (int cpu = 0; cpu < ncpus; cpu++)
        for (int bucket = 0; bucket < POL_BUCKETS; bucket++)
            if (pol_pas_state(p, cpu, bucket, s + (cpu * POL_BUCKETS + bucket) * 9) < 0) {
                Py_DECREF(b);
                PyErr_Format(PyExc_OverflowError,
                             "cpu %d bucket %d: the PAS state has outgrown int64", cpu, bucket);
                return NULL;
            }
    return b;
}

static PyObject *results(const pol_policy *p, int ncpus, PyObject *outputs)
{
    PyObject *stats = switch_stats(p, ncpus);
    PyObject *trans = stats ? transitions(p, ncpus) : NULL;
    PyObject *pas = trans ? pas_states(p, ncpus) : NULL;
    if (!pas) {
        Py_XDECREF(stats);
        Py_XDECREF(trans);
        return NULL;
    }
    return Py_BuildValue("(ONNN)", outputs, stats, trans, pas);
}

/* ---- replay() --------------------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    pol_policy *policy;
    pol_io *ios;
    unsigned char *submitted;
    PyObject *outputs;
} replay_state;

static void replay_free(replay_state *r)
{
    if (r->view.obj)
        PyBuffer_Release(&r->view);
    pol_free(r->policy);
    free(r->ios);
    free(r->submitted);
    Py_XDECREF(r->outputs);
}

static PyObject *replay_events(replay_state *r, const pol_config *c, int ncpus)
{
    const int64_t *ev = r->view.buf;
    Py_ssize_t n = r->view.shape[0], n_ios, bad;
    if (events_check(ev, n, ncpus, &n_ios) < 0)
        return NULL;
    r->policy = pol_new(c, ncpus);
    r->ios = calloc((size_t)n_ios + 1, sizeof *r->ios);
    r->submitted = calloc((size_t)n_ios + 1, 1);
    r->outputs = PyBytes_FromStringAndSize(NULL, n * 4 * 8);
    if (!r->policy || !r->ios || !r->submitted)
        return PyErr_NoMemory();
    if (!r->outputs)
        return NULL;
    int64_t *out = (int64_t *)PyBytes_AS_STRING(r->outputs);
    memset(out, 0, (size_t)n * 4 * 8);
    Py_BEGIN_ALLOW_THREADS
    bad = replay_run(r->policy, ev, n, r->ios, r->submitted, out);
    Py_END_ALLOW_THREADS
    if (bad < 0) {
        Py_ssize_t i = -1 - bad;
        return PyErr_Format(PyExc_ValueError, "event %zd (kind %lld, io %lld): before its submit",
                            i, (long long)ev[i * NCOLS + COL_KIND],
                            (long long)ev[i * NCOLS + COL_IO]);
    }
    return results(r->policy, ncpus, r->outputs);
}

PyObject *engine_replay(PyObject *self, PyObject *args)
{
    PyObject *config, *events;
    int ncpus;
    pol_config c;
    if (!PyArg_ParseTuple(args, "OOi:replay", &config, &events, &ncpus))
        return NULL;
    if (engine_config(config, &c) < 0)
        return NULL;
    if (ncpus < 1 || ncpus > MAX_CPUS)
        return PyErr_Format(PyExc_ValueError, "ncpus %d: expected 1..%d", ncpus, MAX_CPUS);
    replay_state r;
    memset(&r, 0, sizeof r);
    if (events_view(events, &r.view) < 0)
        return NULL;
    PyObject *result = replay_events(&r, &c, ncpus);
    replay_free(&r);
    return result;
}
