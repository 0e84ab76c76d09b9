/* replay(): the policy core driven by a list of events, for the differential test. */
#ifndef DPAS_REPLAY_H
#define DPAS_REPLAY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "policy_core.h"

PyObject *engine_replay(PyObject *self, PyObject *args);

/* The dict of dpas.engine.rules.config_dict() as a pol_config: returns 0, or -1 with KeyError
 * (a missing key), TypeError (not an int) or ValueError (out of range) naming the key. */
int engine_config(PyObject *mapping, pol_config *out);

/* Appends one CPU's transitions to ``list`` as dpas.policy's tuples (now_ns, cpu, old mode,
 * new mode, count, avg_qd, tf): 0, or -1 with a Python error set. */
int append_transitions(PyObject *list, const pol_policy *p, int cpu);

#endif
