/* dpas.policy in C, for the engine's hot loop: the compiled copy of the decision rules.
 *
 * dpas.policy (Python) is the reference; tests/test_engine_differential.py drives this copy and
 * the reference with the same random events and requires identical decisions and states.
 * Nothing here reads a clock, sleeps or locks: callers pass time in and serialise the calls
 * that touch one state domain (pol_domain()).
 */
#ifndef DPAS_POLICY_CORE_H
#define DPAS_POLICY_CORE_H

#include <stdint.h>

#define POL_BUCKETS 16
#define POL_DIV 1000000LL
#define POL_NO_BUCKET (-1)

/* dpas.policy.Method, in this order */
enum pol_method { POL_INT = 0, POL_CP = 1, POL_LHP = 2, POL_EHP = 3, POL_PAS = 4, POL_DPAS = 5 };
/* dpas.policy.Mode */
enum pol_mode { MODE_INT = 0, MODE_CP = 1, MODE_PAS = 2, MODE_OL = 3 };

typedef struct {
    int method;        /* enum pol_method */
    /* PasParams */
    int64_t d_init, up_init, dn_init, heat_up, cool_dn, min_dn, max_dn, updn_ratio;
    int adaptive;      /* 0, 1, 2 */
    /* SwitchParams: param[1] .. param[7]; param[0] unused */
    int64_t param[8];
    int order_guide;   /* Order.GUIDE: the CP test before the tf test */
    /* LHP */
    int64_t io_poll_delay;  /* 0 adaptive, N > 0 fixed N us */
    int64_t lhp_window_ns;
    /* EhpParams */
    int64_t ehp_ctx_ns, ehp_isr_ns, ehp_benefit_ratio, ehp_window_ns;
    /* Bucketing */
    int stats_sectors_bug, queue_stats;
} pol_config;

/* What dpas.policy.Io carries. */
typedef struct {
    int cpu;
    int bucket;
    int64_t submit_ns;
    int polled;
    int64_t sleep_ns;
    int dur_cnt;       /* -1: did not sleep a PAS duration */
    int mode;          /* DPAS: the CPU's mode at submission; -1 otherwise */
    int qd_counted;
    /* the PAS update the last pol_wait_start applied: updated = 0 for none (dpas.policy keeps
     * the previous wait's Io.pas_update when a wait applies none; this copy clears it) */
    int updated, update_case, floored;
} pol_io;

typedef struct {
    int64_t now_ns;
    int cpu, old_mode, new_mode;
    int64_t count;
    int64_t avg_qd;    /* -1: None */
    int64_t tf;
} pol_transition;

typedef struct pol_policy pol_policy;

/* A fresh policy with per-CPU state for CPUs 0 .. ncpus-1; NULL when out of memory or
 * ncpus < 1. The config must hold what dpas.policy accepts (engine_config() checks it): PAS
 * values >= 0 with updn_ratio > 0, params >= -1, adaptive 0..2, positive windows for LHP/EHP.
 *
 * The event functions require 0 <= cpu < ncpus, op 0 or 1, size >= 0 and times >= 0 (ns on one
 * monotonic clock); they never fail and never allocate, except to grow a CPU's transitions. */
pol_policy *pol_new(const pol_config *config, int ncpus);
void pol_free(pol_policy *p);

/* The events of dpas.policy.base, same order and meaning. */
void pol_submit(pol_policy *p, pol_io *io, int cpu, int op, int64_t size, int64_t now_ns);
int64_t pol_wait_start(pol_policy *p, pol_io *io, int64_t now_ns);
void pol_wait_end(pol_policy *p, pol_io *io, int64_t now_ns);
/* cpu: the CPU that saw the completion; pass io->cpu for "the submitting CPU" */
void pol_complete(pol_policy *p, pol_io *io, int64_t now_ns, int found_on_first_poll, int cpu);

/* Which state an event on ``cpu`` touches: the CPU's own (returns cpu): PAS's and DPAS's
 * per-CPU state, LHP's and EHP's per-CPU statistics (INT, CP: none; returns 0). Callers that
 * run events from several threads hold one lock per domain: events of one domain must not
 * overlap, and an event for which pol_window_boundary() is true must hold every domain. */
int pol_domain(const pol_policy *p, int cpu);

/* The events, as pol_window_boundary() names them. */
enum pol_event { POL_EV_SUBMIT = 0, POL_EV_WAIT_START = 1, POL_EV_WAIT_END = 2, POL_EV_COMPLETE = 3 };

/* LHP, EHP: 1 when this event (of an I/O in ``bucket``, at ``now_ns``) would open or close a
 * statistics window: it then merges or clears every CPU's statistics, so the caller must hold
 * every domain for it (and for the check: call it again once they are held). Between two such
 * events, the events of different CPUs only add to their own CPU's statistics and read the
 * published ones, so they commute: a log ordered by these boundaries replays exactly. 0 for
 * every other method. */
int pol_window_boundary(const pol_policy *p, int event, int bucket, int64_t now_ns);

/* DPAS: the mode of ``cpu`` now (-1 for other methods). */
int pol_mode(const pol_policy *p, int cpu);

/* DPAS: the transitions recorded on ``cpu``, in order; *n receives their number. */
const pol_transition *pol_transitions(const pol_policy *p, int cpu, int64_t *n);

/* Transitions not recorded because growing an array failed (0 unless out of memory). */
int64_t pol_transitions_dropped(const pol_policy *p);

/* DPAS: the switch_stat totals and live values of ``cpu``:
 * out[0..3] = cp, pas, ol, int totals; out[4] = mode; out[5] = qd; out[6] = qd_sum; out[7] = tf;
 * out[8] = evaluations skipped (always 0: a domain's events never overlap, so the kernel's
 * try-lock never finds an evaluation running). Returns 0, or -1 for other methods. */
int pol_switch_stat(const pol_policy *p, int cpu, int64_t out[9]);

/* The statistics bucket of a request (dpas.policy.Bucketing.bucket): POL_NO_BUCKET or 0..15. */
int pol_bucket(const pol_config *c, int op, int64_t size);

/* PAS, DPAS: the PasState of (cpu, bucket): out = dur, adj, up, dn, sr_pnlt, sr_last, dur_cnt,
 * dur_cnt_checked, update_req. Returns 1, or 0 with out zeroed when the CPU has not slept a PAS
 * duration yet (dpas.policy creates a CPU's states then) or for other methods, or -1 when adj,
 * up or dn has outgrown int64 (dpas.policy's integers are unbounded; this copy keeps 128 bits). */
int pol_pas_state(const pol_policy *p, int cpu, int bucket, int64_t out[9]);

#endif
