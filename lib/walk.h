/*
 * walk.h - the walk over what futures wait for (walk.c), and the report
 * of a deadlock it finds (deadlock.c): for the waits that check for
 * cycles, the relays that a walk follows, and futures_dump().
 */
#ifndef FUTURES_WALK_H
#define FUTURES_WALK_H

#include "internal.h"

#include <stdio.h>

/* Can unsettled @f settle only once @exec runs more of its queue? Or
 * only once this thread moves on (its loop, or a cycle of waits)? A
 * future a cycle walk reads through fut__ops.follows is released only
 * after fut__walk_quiesce(): no walk still reads it. */
bool fut__needs_exec(future_t *f, const struct fut__exec *exec);
bool fut__needs_this_thread(future_t *f, FILE *report);
void fut__walk_quiesce(void);

/* Writes to @out @heading, then what @f, which a thread is blocked on,
 * waits for, one indented line a link (for futures_dump); nothing if a
 * walk runs on this thread already. */
void fut__explain_wait(future_t *f, const char *heading, FILE *out);

/* deadlock.c: FUTURES_DEADLOCK=abort, and the head of its report. */
bool fut__deadlock_aborts(void);
void fut__deadlock_report_head(const future_t *f);

#endif /* FUTURES_WALK_H */
