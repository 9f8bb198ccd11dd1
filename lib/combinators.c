/*
 * combinators.c - when_all() and when_any().
 *
 * A combinator is a future with one watch per input (watch.c). when_all
 * counts its inputs down and settles with the last one, failing with the
 * error of the lowest-index input that failed; each watch records its
 * input's error as it fires, so the inputs can be let go of early. when_any
 * settles with the index of the first input to settle, then detaches from
 * the rest so that a loop of when_any over long-lived futures does not pile
 * watches onto them.
 *
 * Neither ever runs a user callback; their continuations run on the default
 * pool (exec is NULL).
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

struct combinator {
    future_t base;
    atomic_size_t remaining; /* when_all: inputs not settled yet */
    atomic_bool decided;     /* when_any: an input has won */
    struct fut__inputs in;
    int *errors; /* when_all: each input's error */
    struct fut__watch watches[];
};

static struct combinator *of(future_t *f)
{
    return fut__container_of(f, struct combinator, base);
}

static void detach_combinator(future_t *f)
{
    fut__inputs_detach(&of(f)->in);
}

static const struct fut__ops combinator_ops = {.kind = "combinator",
                                               .detach = detach_combinator};

static void all_input_settled(struct fut__inputs *in, size_t index)
{
    struct combinator *c = of(in->owner);
    c->errors[index] = in->w[index].target->error;
    if (atomic_fetch_sub_explicit(&c->remaining, 1, memory_order_acq_rel) != 1)
        return;
    int error = 0;
    for (size_t i = 0; i < in->n && !error; i++)
        error = c->errors[i];
    fut__settle(&c->base, error, NULL);
}

static void any_input_settled(struct fut__inputs *in, size_t index)
{
    struct combinator *c = of(in->owner);
    if (atomic_exchange(&c->decided, true))
        return;
    if (fut__settle(&c->base, 0, (void *)(uintptr_t)index))
        fut__inputs_detach(in);
}

/* Checks the arguments and allocates a combinator over @n inputs. */
static struct combinator *combinator_new(future_t *const *fs, size_t n,
                                         bool all)
{
    if (!fs) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) {
            errno = EINVAL;
            return NULL;
        }
    }
    size_t per_input = sizeof(struct fut__watch) + (all ? sizeof(int) : 0);
    if (n >= UINT_MAX ||
        n > (SIZE_MAX - sizeof(struct combinator)) / per_input) {
        errno = ENOMEM;
        return NULL;
    }
    struct combinator *c = (struct combinator *)fut__new(
        sizeof *c + n * per_input, &combinator_ops, FUT_PENDING, 1);
    if (!c)
        return NULL;
    atomic_init(&c->remaining, n);
    atomic_init(&c->decided, false);
    if (all)
        c->errors = (int *)(void *)&c->watches[n];
    fut__inputs_init(&c->in, &c->base, c->watches, fs, n,
                     all ? all_input_settled : any_input_settled);
    return c;
}

future_t *when_all(future_t *const *futures, size_t n)
{
    if (n == 0)
        return future_resolved(NULL);
    struct combinator *c = combinator_new(futures, n, true);
    if (!c)
        return NULL;
    fut__inputs_arm(&c->in);
    return &c->base;
}

future_t *when_any(future_t *const *futures, size_t n)
{
    if (n == 0) {
        errno = EINVAL;
        return NULL;
    }
    struct combinator *c = combinator_new(futures, n, false);
    if (!c)
        return NULL;
    fut__inputs_arm(&c->in);
    return &c->base;
}
