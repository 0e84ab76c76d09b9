/* The compiled copy of dpas.policy: same events, same integer arithmetic, same decisions.
 *
 * Python's integers are unbounded; here adj, up and dn are 128-bit (they are the values that
 * sums and products of the knobs can push past 64 bits), intermediate products are 128-bit,
 * and every division where an operand can be negative floors as Python's // does.
 */
#include "policy_core.h"

#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 i128;

#define POL_U8 0xFF

/* dpas.policy.PasState */
typedef struct {
    int64_t dur;
    i128 adj, up, dn;
    int sr_pnlt, sr_last, dur_cnt, dur_cnt_checked, update_req;
} pas_state;

/* dpas.policy.SwitchState plus the CPU's transitions */
typedef struct {
    int mode;
    int64_t cp_cnt, pas_cnt, ol_cnt, int_cnt;
    int64_t cp_total, pas_total, ol_total, int_total;
    int64_t qd, qd_sum, tf;
    int force_update;
    int64_t evaluations_skipped;
    pol_transition *trans;
    int64_t ntrans, cap, dropped;
} switch_state;

/* One CPU's state, on cache lines of its own: CPUs run their events concurrently. */
typedef struct {
    _Alignas(64) pas_state pas[POL_BUCKETS];
    int pas_used; /* dpas.policy creates a CPU's PasStates at its first PAS sleep */
    switch_state sw;
} cpu_state;

/* dpas.policy.windows.StatWindows */
typedef struct {
    int valid;
    int64_t nr_samples, mean, min;
} bucket_stat;

/* One CPU's samples of the open window: the kernel keeps its completion statistics per CPU
 * and sums them when the window closes; summed exactly, they give the window's own mean */
typedef struct {
    _Alignas(64) int64_t count[POL_BUCKETS];
    int64_t min[POL_BUCKETS];
    i128 batch[POL_BUCKETS];
} win_sums;

typedef struct {
    int open;
    i128 end_ns;
    int64_t windows_closed;
    bucket_stat published[POL_BUCKETS];
    win_sums *cpu; /* ncpus */
    int ncpus;
} stat_windows;

struct pol_policy {
    pol_config c;
    int ncpus;
    cpu_state *cpu; /* ncpus */
    stat_windows win;
};

/* ---- arithmetic ------------------------------------------------------------------------- */

/* Python's a // b for b > 0 */
static i128 floordiv(i128 a, i128 b)
{
    i128 q = a / b;
    if (a % b != 0 && a < 0)
        q -= 1;
    return q;
}

static int fits_i64(i128 v) { return v >= INT64_MIN && v <= INT64_MAX; }

static int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* ---- bucketing (dpas.policy.request) ------------------------------------------------------ */

int pol_bucket(const pol_config *c, int op, int64_t size)
{
    if (c->stats_sectors_bug && !c->queue_stats)
        return POL_NO_BUCKET;
    /* ilog2 is fls(n) - 1: zero sectors give -1 and fall below bucket 0 */
    int bucket = op + 2 * (bit_length((uint64_t)(size / 512)) - 1);
    if (bucket < 0)
        return POL_NO_BUCKET;
    if (bucket >= POL_BUCKETS)
        return op + POL_BUCKETS - 2;
    return bucket;
}

/* ---- PAS (dpas.policy.pas) ---------------------------------------------------------------- */

static void pas_init(pas_state *s, const pol_config *c)
{
    memset(s, 0, sizeof *s);
    s->dur = c->d_init;
    s->adj = POL_DIV;
    s->up = c->up_init;
    s->dn = c->dn_init;
    s->sr_last = 1;
    s->dur_cnt = 1;
}

static pas_state *pas_of(pol_policy *p, int cpu, int bucket)
{
    p->cpu[cpu].pas_used = 1;
    return &p->cpu[cpu].pas[bucket];
}

static void pas_feedback(pas_state *s, int dur_cnt, int overslept)
{
    if (dur_cnt != s->dur_cnt || s->dur_cnt == s->dur_cnt_checked)
        return;
    s->dur_cnt_checked = s->dur_cnt;
    s->sr_pnlt = s->sr_last;
    s->sr_last = overslept ? 0 : 1;
    s->update_req = 1;
}

/* x * (DIV + heat_up) // DIV capped at cap. x >= cap already gives cap (the factor is >= 1),
 * which keeps the product below 2^127. */
static i128 heat(i128 x, int64_t heat_up, i128 cap)
{
    if (x >= cap)
        return cap;
    x = x * ((i128)POL_DIV + heat_up) / POL_DIV;
    return x > cap ? cap : x;
}

/* x * (DIV - cool_dn) // DIV floored at floor. The factor is negative when cool_dn > DIV;
 * floor >= 0 then clamps the result, so flooring and truncating agree, but this floors as
 * Python does all the same. */
static i128 cool(i128 x, int64_t cool_dn, i128 floor)
{
    x = floordiv(x * ((i128)POL_DIV - cool_dn), POL_DIV);
    return x < floor ? floor : x;
}

static void pas_adapt(pas_state *s, const pol_config *c, int hot)
{
    if (c->adaptive == 1) {
        if (hot) {
            s->dn = heat(s->dn, c->heat_up, c->max_dn);
            s->up = s->dn / c->updn_ratio;
        } else {
            s->up = cool(s->up, c->cool_dn, c->min_dn / c->updn_ratio);
            s->dn = s->up * c->updn_ratio;
        }
    } else if (c->adaptive == 2) {
        s->up = hot ? heat(s->up, c->heat_up, POL_DIV / 10)
                    : cool(s->up, c->cool_dn, POL_DIV / 10000);
    }
}

/* PasState.update: returns 1 and fills io's update fields when an update was applied. */
static int pas_update(pas_state *s, const pol_config *c, int force, pol_io *io)
{
    if (!(s->update_req || force))
        return 0;
    s->update_req = 0;
    int kase = s->sr_pnlt * 2 + s->sr_last;
    switch (kase) {
    case 0: s->adj -= s->dn; break;
    case 1: s->adj = POL_DIV + s->up; break;
    case 2: s->adj = POL_DIV - s->dn; break;
    default: s->adj += s->up; break;
    }
    if (s->adj <= 0)
        s->adj = POL_DIV;
    /* the kernel's u64 multiply wraps: only adj's low 64 bits count */
    int64_t dur = (int64_t)((uint64_t)s->dur * (uint64_t)s->adj / (uint64_t)POL_DIV);
    int floored = dur < c->d_init;
    s->dur = floored ? c->d_init : dur;
    s->dur_cnt = (s->dur_cnt + 1) & POL_U8;
    pas_adapt(s, c, kase == 0 || kase == 3);
    io->updated = 1;
    io->update_case = kase;
    io->floored = floored;
    return 1;
}

/* ---- DPAS's switch (dpas.policy.switch) --------------------------------------------------- */

static void record(pol_policy *p, int cpu, int64_t now_ns, int old, int new, int64_t count,
                   int64_t avg_qd, int64_t tf)
{
    switch_state *sw = &p->cpu[cpu].sw;
    if (sw->ntrans == sw->cap) {
        int64_t cap = sw->cap ? 2 * sw->cap : 16;
        pol_transition *t = realloc(sw->trans, (size_t)cap * sizeof *t);
        if (!t) {
            sw->dropped++;
            return;
        }
        sw->trans = t;
        sw->cap = cap;
    }
    sw->trans[sw->ntrans++] = (pol_transition){now_ns, cpu, old, new, count, avg_qd, tf};
}

/* SwitchState.count_submit: returns polled; *entered_ol is set on INT -> OL */
static int count_submit(switch_state *sw, const pol_config *c, int *entered_ol)
{
    *entered_ol = 0;
    switch (sw->mode) {
    case MODE_INT:
        sw->int_cnt++;
        sw->int_total++;
        if (sw->int_cnt >= c->param[7]) {
            sw->mode = MODE_OL;
            sw->ol_cnt = sw->qd_sum = sw->tf = 0;
            *entered_ol = 1;
        }
        return 0;
    case MODE_CP: sw->cp_cnt++; sw->cp_total++; break;
    case MODE_PAS: sw->pas_cnt++; sw->pas_total++; break;
    default: sw->ol_cnt++; sw->ol_total++; break;
    }
    return 1;
}

/* qd_sum*10 // count; qd_sum >= 0 and count > 0 */
static int64_t avg_qd(const switch_state *sw, int64_t count)
{
    return (int64_t)((i128)sw->qd_sum * 10 / count);
}

/* The outcome of an evaluation that changed the mode. */
typedef struct {
    int new_mode;
    int64_t count, avg_qd;
} verdict;

static int evaluate_pas(switch_state *sw, const pol_config *c, verdict *v)
{
    int64_t count = sw->pas_cnt;
    if (count < c->param[5] || count <= 0)
        return 0;
    int64_t avg = avg_qd(sw, count);
    int to_ol = sw->tf > c->param[1];
    int to_cp = c->param[4] >= 1 && avg == 10;
    if (c->order_guide && to_cp)
        to_ol = 0;
    sw->qd_sum = sw->tf = 0;
    *v = (verdict){MODE_PAS, count, avg};
    if (to_ol) {
        sw->mode = v->new_mode = MODE_OL;
        sw->ol_cnt = 0;
        return 1;
    }
    if (to_cp) {
        sw->mode = v->new_mode = MODE_CP;
        sw->cp_cnt = 0;
        return 1;
    }
    sw->pas_cnt = 0;
    return 0;
}

static int evaluate_ol(switch_state *sw, const pol_config *c, verdict *v)
{
    int64_t count = sw->ol_cnt;
    if (count < c->param[5] || count <= 0)
        return 0;
    int64_t avg = avg_qd(sw, count);
    sw->qd_sum = sw->tf = 0;
    *v = (verdict){MODE_OL, count, avg};
    if (avg <= c->param[2]) {
        sw->mode = v->new_mode = MODE_PAS;
        sw->pas_cnt = 0;
        return 1;
    }
    if (avg > c->param[3]) {
        sw->mode = v->new_mode = MODE_INT;
        sw->int_cnt = 0;
        return 1;
    }
    sw->ol_cnt = 0;
    return 0;
}

/* SwitchState.evaluate: returns 1 when the mode changed */
static int evaluate(switch_state *sw, const pol_config *c, verdict *v)
{
    switch (sw->mode) {
    case MODE_CP:
        if (sw->cp_cnt < c->param[6])
            return 0;
        *v = (verdict){MODE_PAS, sw->cp_cnt, -1};
        sw->mode = MODE_PAS;
        sw->pas_cnt = sw->tf = sw->qd_sum = 0;
        sw->force_update = 1;
        return 1;
    case MODE_PAS: return evaluate_pas(sw, c, v);
    case MODE_OL: return evaluate_ol(sw, c, v);
    default: return 0; /* INT leaves only from the submission hook */
    }
}

/* ---- statistics windows (dpas.policy.windows) ---------------------------------------------- */

static void win_advance(stat_windows *w, int64_t now_ns)
{
    if (!w->open || now_ns < w->end_ns)
        return;
    for (int b = 0; b < POL_BUCKETS; b++) {
        int64_t count = 0, min = 0;
        i128 batch = 0;
        for (int cpu = 0; cpu < w->ncpus; cpu++) {
            win_sums *sums = &w->cpu[cpu];
            if (!sums->count[b])
                continue;
            if (!count || sums->min[b] < min)
                min = sums->min[b];
            count += sums->count[b];
            batch += sums->batch[b];
        }
        if (count)
            w->published[b] = (bucket_stat){1, count, (int64_t)(batch / count), min};
    }
    memset(w->cpu, 0, (size_t)w->ncpus * sizeof *w->cpu);
    w->open = 0;
    w->windows_closed++;
}

static void win_add(stat_windows *w, int cpu, int64_t window_ns, int bucket, int64_t value_ns,
                    int64_t now_ns)
{
    win_advance(w, now_ns);
    if (!w->open) {
        w->open = 1;
        w->end_ns = (i128)now_ns + window_ns;
    }
    if (value_ns < 0)
        value_ns = 0;
    win_sums *sums = &w->cpu[cpu];
    if (sums->count[bucket] == 0 || value_ns < sums->min[bucket])
        sums->min[bucket] = value_ns;
    sums->count[bucket]++;
    sums->batch[bucket] += value_ns;
}

/* WindowedPolicy.stat: NULL for no bucket or before the bucket's first published window */
static const bucket_stat *win_stat(stat_windows *w, int bucket, int64_t now_ns)
{
    if (bucket < 0)
        return NULL;
    win_advance(w, now_ns);
    return w->published[bucket].valid ? &w->published[bucket] : NULL;
}

static int windowed(const pol_config *c) { return c->method == POL_LHP || c->method == POL_EHP; }

static i128 ehp_overhead(const pol_config *c) { return 2 * (i128)c->ehp_ctx_ns + c->ehp_isr_ns; }

/* EhpPolicy.polls: overhead * benefit_ratio > min, or no statistics */
static int ehp_polls(const pol_config *c, const bucket_stat *st)
{
    i128 product;
    if (!st)
        return 1;
    if (__builtin_mul_overflow(ehp_overhead(c), (i128)c->ehp_benefit_ratio, &product))
        return 1; /* both factors are >= 0: the true product exceeds any min */
    return product > st->min;
}

/* ---- the policy ------------------------------------------------------------------------- */

pol_policy *pol_new(const pol_config *config, int ncpus)
{
    if (ncpus < 1)
        return NULL;
    pol_policy *p = calloc(1, sizeof *p);
    size_t size = (size_t)ncpus * sizeof(cpu_state);
    if (!p || !(p->cpu = aligned_alloc(_Alignof(cpu_state), size))) {
        free(p);
        return NULL;
    }
    memset(p->cpu, 0, size);
    p->win.ncpus = ncpus;
    if (!(p->win.cpu = aligned_alloc(_Alignof(win_sums), (size_t)ncpus * sizeof(win_sums)))) {
        free(p->cpu);
        free(p);
        return NULL;
    }
    memset(p->win.cpu, 0, (size_t)ncpus * sizeof(win_sums));
    p->c = *config;
    p->ncpus = ncpus;
    for (int cpu = 0; cpu < ncpus; cpu++) {
        for (int b = 0; b < POL_BUCKETS; b++)
            pas_init(&p->cpu[cpu].pas[b], config);
        p->cpu[cpu].sw.mode = MODE_PAS;
    }
    return p;
}

void pol_free(pol_policy *p)
{
    if (!p)
        return;
    for (int cpu = 0; cpu < p->ncpus; cpu++)
        free(p->cpu[cpu].sw.trans);
    free(p->win.cpu);
    free(p->cpu);
    free(p);
}

void pol_submit(pol_policy *p, pol_io *io, int cpu, int op, int64_t size, int64_t now_ns)
{
    const pol_config *c = &p->c;
    *io = (pol_io){.cpu = cpu, .bucket = pol_bucket(c, op, size), .submit_ns = now_ns,
                   .polled = 1, .dur_cnt = -1, .mode = -1};
    switch (c->method) {
    case POL_INT: io->polled = 0; break;
    case POL_EHP: io->polled = ehp_polls(c, win_stat(&p->win, io->bucket, now_ns)); break;
    case POL_DPAS: {
        /* an I/O with no bucket never enters the state machine */
        if (io->bucket < 0)
            break;
        switch_state *sw = &p->cpu[cpu].sw;
        int old = sw->mode, entered_ol;
        int64_t tf = sw->tf;
        io->polled = count_submit(sw, c, &entered_ol);
        io->mode = old;
        if (entered_ol)
            record(p, cpu, now_ns, old, MODE_OL, sw->int_cnt, -1, tf);
        break;
    }
    default: break;
    }
}

/* PasPolicy._pas_sleep */
static int64_t pas_sleep(pol_policy *p, pol_io *io, int force)
{
    if (io->bucket < 0)
        return 0;
    pas_state *s = pas_of(p, io->cpu, io->bucket);
    if (pas_update(s, &p->c, force, io) && io->floored && p->c.method == POL_DPAS)
        p->cpu[io->cpu].sw.tf++; /* a timer-floor event; only DPAS counts them */
    io->dur_cnt = s->dur_cnt;
    io->sleep_ns = s->dur;
    return s->dur;
}

static int64_t dpas_wait_start(pol_policy *p, pol_io *io, int64_t now_ns)
{
    if (io->bucket < 0)
        return 0;
    int cpu = io->cpu;
    switch_state *sw = &p->cpu[cpu].sw;
    if (sw->mode != MODE_CP) {
        sw->qd += 1;
        sw->qd_sum += sw->qd;
        io->qd_counted = 1;
    }
    int old = sw->mode;
    int64_t tf = sw->tf;
    verdict v;
    if (evaluate(sw, &p->c, &v))
        record(p, cpu, now_ns, old, v.new_mode, v.count, v.avg_qd, tf);
    if (sw->mode == MODE_CP)
        return 0;
    int force = sw->force_update;
    sw->force_update = 0;
    return pas_sleep(p, io, force);
}

static int64_t lhp_wait_start(pol_policy *p, pol_io *io, int64_t now_ns)
{
    if (p->c.io_poll_delay > 0)
        return io->sleep_ns = p->c.io_poll_delay * 1000;
    const bucket_stat *st = win_stat(&p->win, io->bucket, now_ns);
    return io->sleep_ns = st ? (int64_t)(((i128)st->mean + 1) / 2) : 0;
}

static int64_t ehp_wait_start(pol_policy *p, pol_io *io, int64_t now_ns)
{
    const bucket_stat *st = win_stat(&p->win, io->bucket, now_ns);
    i128 sleep = st ? st->min - ehp_overhead(&p->c) : 0;
    return io->sleep_ns = sleep > 0 ? (int64_t)sleep : 0;
}

int64_t pol_wait_start(pol_policy *p, pol_io *io, int64_t now_ns)
{
    io->updated = io->update_case = io->floored = 0;
    switch (p->c.method) {
    case POL_LHP: return lhp_wait_start(p, io, now_ns);
    case POL_EHP: return ehp_wait_start(p, io, now_ns);
    case POL_PAS: return pas_sleep(p, io, 0);
    case POL_DPAS: return dpas_wait_start(p, io, now_ns);
    default: return 0;
    }
}

void pol_wait_end(pol_policy *p, pol_io *io, int64_t now_ns)
{
    (void)now_ns;
    if (p->c.method == POL_DPAS && io->qd_counted) {
        p->cpu[io->cpu].sw.qd -= 1;
        io->qd_counted = 0;
    }
}

void pol_complete(pol_policy *p, pol_io *io, int64_t now_ns, int found_on_first_poll, int cpu)
{
    const pol_config *c = &p->c;
    if (c->method == POL_PAS || c->method == POL_DPAS) {
        /* feedback only from the CPU that slept, for the generation it slept */
        if (io->dur_cnt < 0 || cpu != io->cpu)
            return;
        pas_feedback(pas_of(p, io->cpu, io->bucket), io->dur_cnt, found_on_first_poll);
    } else if (windowed(c) && io->bucket >= 0) {
        int64_t window = c->method == POL_LHP ? c->lhp_window_ns : c->ehp_window_ns;
        win_add(&p->win, io->cpu, window, io->bucket, now_ns - io->submit_ns, now_ns);
    }
}

/* ---- inspection ------------------------------------------------------------------------- */

int pol_domain(const pol_policy *p, int cpu)
{
    return p->c.method == POL_INT || p->c.method == POL_CP ? 0 : cpu;
}

/* Which events read or add to the statistics windows, as dpas.policy's LHP and EHP do: EHP's
 * submission and wait, LHP's wait unless its delay is fixed, and every completion; an I/O
 * without a bucket never does. */
static int touches_window(const pol_config *c, int event, int bucket)
{
    if (!windowed(c) || bucket < 0)
        return 0;
    switch (event) {
    case POL_EV_SUBMIT: return c->method == POL_EHP;
    case POL_EV_WAIT_START: return c->method == POL_EHP || c->io_poll_delay <= 0;
    case POL_EV_COMPLETE: return 1;
    default: return 0;
    }
}

int pol_window_boundary(const pol_policy *p, int event, int bucket, int64_t now_ns)
{
    if (!touches_window(&p->c, event, bucket))
        return 0;
    const stat_windows *w = &p->win;
    if (w->open)
        return now_ns >= w->end_ns;
    return event == POL_EV_COMPLETE;
}

int pol_mode(const pol_policy *p, int cpu)
{
    return p->c.method == POL_DPAS ? p->cpu[cpu].sw.mode : -1;
}

const pol_transition *pol_transitions(const pol_policy *p, int cpu, int64_t *n)
{
    if (p->c.method != POL_DPAS) {
        *n = 0;
        return NULL;
    }
    *n = p->cpu[cpu].sw.ntrans;
    return p->cpu[cpu].sw.trans;
}

int64_t pol_transitions_dropped(const pol_policy *p)
{
    int64_t dropped = 0;
    for (int cpu = 0; cpu < p->ncpus; cpu++)
        dropped += p->cpu[cpu].sw.dropped;
    return dropped;
}

int pol_switch_stat(const pol_policy *p, int cpu, int64_t out[9])
{
    if (p->c.method != POL_DPAS)
        return -1;
    const switch_state *sw = &p->cpu[cpu].sw;
    int64_t v[9] = {sw->cp_total, sw->pas_total, sw->ol_total, sw->int_total, sw->mode,
                    sw->qd,       sw->qd_sum,    sw->tf,       sw->evaluations_skipped};
    memcpy(out, v, sizeof v);
    return 0;
}

int pol_pas_state(const pol_policy *p, int cpu, int bucket, int64_t out[9])
{
    memset(out, 0, 9 * sizeof *out);
    if ((p->c.method != POL_PAS && p->c.method != POL_DPAS) || !p->cpu[cpu].pas_used)
        return 0;
    const pas_state *s = &p->cpu[cpu].pas[bucket];
    if (!fits_i64(s->adj) || !fits_i64(s->up) || !fits_i64(s->dn))
        return -1;
    int64_t v[9] = {s->dur,     (int64_t)s->adj, (int64_t)s->up,       (int64_t)s->dn,
                    s->sr_pnlt, s->sr_last,      s->dur_cnt,           s->dur_cnt_checked,
                    s->update_req};
    memcpy(out, v, sizeof v);
    return 1;
}
