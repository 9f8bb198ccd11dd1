/*
 * compose.c - future_compose(): a step that returns a future, flattened.
 *
 * future_compose(f, fn) makes two futures. The result the caller holds is
 * a relay: it never runs, and settles with the outcome of the future it
 * adopts. The step, internal, watches f like a continuation; once f
 * succeeds it runs fn on f's executor and delivers the future fn returned
 * to its relay, which adopts it. A failure of f goes straight to the relay.
 *
 *   f --watch--> step --runs fn, returns g--> relay --watch--> g
 *
 * A loop written as recursion (each fn returns future_compose() of the
 * next step) would otherwise build a chain of relays, each adopting the
 * next, as long as the loop: memory that grows until the end. So when fn
 * returns a relay g that nothing but fn's reference and g's own step
 * refer to, the step does not adopt g: it forwards g to its own relay (a
 * compare-and-swap of g's link), and g's step, whenever it delivers,
 * follows the link and delivers to that relay instead. The caller's relay
 * is fed by one step after another, each step's futures are freed as the
 * loop goes, and a step that has already started when g is forwarded is
 * no exception. A relay's link says which it is:
 *
 *   0           open: its step will deliver to it
 *   LINK_TAKEN  a step delivered to it (it adopts, or has settled)
 *   a relay     forwarded there (a reference): of use to nobody but those
 *               that hold it on the way to the link's end, the last of
 *               which settles it quietly as it lets go (release_relay)
 *
 * Cancelling a relay cancels the step that feeds it (fn never runs) or
 * the future it adopted.
 */
#include "internal.h"
#include "walk.h"

#include <errno.h>

#define LINK_TAKEN ((uintptr_t)1)

struct step {
    future_t base;
    compose_fn fn;
    void *arg;
    _Atomic(future_t *) relay; /* the relay it feeds (a reference), taken
                                  once, when it delivers */
    void *in_value;            /* f's value, while fn runs */
    future_t *source;          /* f, kept while fn reads a value f owns */
    struct fut__inputs in;
    struct fut__watch watch;
};

struct relay {
    future_t base;
    _Atomic(future_t *) feeder; /* the step that feeds it (a reference) */
    _Atomic(future_t *) inner;  /* the future it adopted (a reference) */
    _Atomic(uintptr_t) link;    /* see the top of the file */
    struct fut__inputs in;      /* its watch on inner */
    struct fut__watch watch;
};

static struct step *step_of(future_t *f)
{
    return fut__container_of(f, struct step, base);
}

static struct relay *relay_of(future_t *f)
{
    return fut__container_of(f, struct relay, base);
}

static const struct fut__ops relay_ops;
static void release_relay(future_t *r);

/* Drops a reference to @f, a relay or any other future. */
static void release_any(future_t *f)
{
    if (f && f->ops == &relay_ops)
        release_relay(f);
    else
        future_release(f);
}

/* ---------------------------------------------------------- the relay -- */

/* Cancels and lets go of what @f holds in @slot, if anything, once no
 * cycle walk still reads it (relay_follows). */
static void cancel_slot(_Atomic(future_t *) *slot)
{
    future_t *taken = atomic_exchange(slot, NULL);
    if (taken) {
        future_cancel(taken);
        fut__walk_quiesce();
        release_any(taken);
    }
}

static void relay_detach(future_t *f)
{
    struct relay *r = relay_of(f);
    cancel_slot(&r->feeder); /* fn never runs, unless it has started */
    if (atomic_load(&r->inner)) {
        fut__inputs_detach(&r->in);
        cancel_slot(&r->inner);
    }
}

static void relay_destroy(future_t *f)
{
    struct relay *r = relay_of(f);
    future_release(atomic_load(&r->feeder));
    release_any(atomic_load(&r->inner));
    uintptr_t link = atomic_load(&r->link);
    if (link > LINK_TAKEN)
        release_relay((future_t *)link);
}

/* For a cycle walk (watch.c): what the relay will take its outcome from,
 * the future it adopted or else the step that feeds it. Whoever takes
 * either out of its slot releases it only after fut__walk_quiesce(). */
static future_t *relay_follows(future_t *f)
{
    struct relay *r = relay_of(f);
    future_t *inner = atomic_load(&r->inner);
    return inner ? inner : atomic_load(&r->feeder);
}

/* Has relay @f adopted the future its step gave it? For tests. */
bool fut__compose_adopted(future_t *f);
bool fut__compose_adopted(future_t *f)
{
    return f->ops == &relay_ops && atomic_load(&relay_of(f)->inner) != NULL;
}

static const struct fut__ops relay_ops = {.kind = "compose",
                                          .detach = relay_detach,
                                          .destroy = relay_destroy,
                                          .follows = relay_follows};

/* Where a delivery to @r would go now: @r, or the relay it forwards to. */
static future_t *follow(future_t *r)
{
    uintptr_t link;
    while ((link = atomic_load(&relay_of(r)->link)) > LINK_TAKEN)
        r = (future_t *)link;
    return r;
}

/*
 * Drops a reference to relay @r; every reference to a relay the library
 * holds goes through here. A forwarded relay is of use to nobody but those
 * that hold it on the way to its link's end, and is never settled while
 * any of them does, so that none of them takes it for cancelled: the last
 * of them settles it, quietly, as it lets go. Whether it is forwarded is
 * asked only then, when nobody else can change it.
 */
static void release_relay(future_t *r)
{
    unsigned refs = atomic_load(&r->refs);
    while (refs > 1 && !atomic_compare_exchange_weak(&r->refs, &refs, refs - 1))
        ;
    if (refs > 1)
        return;
    if (atomic_load(&relay_of(r)->link) > LINK_TAKEN) {
        fut__observe(r);
        fut__settle(r, ECANCELED, NULL);
    }
    future_release(r);
}

/*
 * Claims the relay a delivery to @r goes to, following links: takes over
 * the reference to @r and returns one to the relay claimed.
 */
static future_t *claim(future_t *r)
{
    for (;;) {
        uintptr_t link = 0;
        if (atomic_compare_exchange_strong(&relay_of(r)->link, &link,
                                           LINK_TAKEN) ||
            link == LINK_TAKEN)
            return r;
        future_t *to = future_retain((future_t *)link);
        release_relay(r);
        r = to;
    }
}

/*
 * Makes relay @g, if only fn's reference (ours) and its own step refer to
 * it, forward to @target: its step will deliver there. Takes over the
 * reference to @g when it returns true.
 */
static bool forward(future_t *g, future_t *target)
{
    if (g->ops != &relay_ops ||
        atomic_load_explicit(&g->refs, memory_order_acquire) != 2 ||
        atomic_load_explicit(&g->deps, memory_order_acquire) != 0)
        return false;
    struct relay *gr = relay_of(g);
    uintptr_t open = 0;
    if (!atomic_compare_exchange_strong(&gr->link, &open,
                                        (uintptr_t)future_retain(target))) {
        release_relay(target);
        return false; /* its step has delivered to it already */
    }
    /* Cancelling target now cancels g's step. */
    future_t *feeder = atomic_exchange(&gr->feeder, NULL);
    future_t *fed = atomic_exchange(&relay_of(target)->feeder, feeder);
    fut__walk_quiesce();
    future_release(fed);
    if (fut__is_settled(target)) /* cancelled meanwhile */
        cancel_slot(&relay_of(target)->feeder);
    release_relay(g); /* its step holds it until it follows the link */
    return true;
}

/* The future the relay adopted settled: settle the relay the same way. */
static void inner_settled(struct fut__inputs *in, size_t pos)
{
    (void)pos;
    future_t *r = in->owner, *g = in->w[0].target;
    /* A value g owns goes with g: the relay keeps g (r->inner) for as
     * long as it lives, and says so to those who pass its value on. */
    if (!g->error && g->value && fut__value_needs_f(g))
        atomic_fetch_or(&r->flags, FUT_KEEPS_SOURCE);
    fut__pass_on(r, g);
}

/* Makes claimed relay @r wait for @g: takes over a reference to each. */
static void adopt(future_t *r, future_t *g)
{
    struct relay *rel = relay_of(r);
    future_t *none = NULL;
    if (g == r || !atomic_compare_exchange_strong(&rel->inner, &none, g)) {
        fut__settle(r, EDEADLK, NULL); /* fn returned the result itself */
        release_any(g);
        release_relay(r);
        return;
    }
    fut__inputs_init(&rel->in, r, &rel->watch, &g, 1, inner_settled);
    fut__inputs_arm(&rel->in);
    /* Cancelled while it adopted g, after relay_detach() looked? Then
     * whichever of the two takes g back cancels it. */
    if (fut__is_settled(r))
        cancel_slot(&rel->inner);
    release_relay(r);
}

/* ----------------------------------------------------------- the step -- */

static void drop_source(struct step *s)
{
    future_release(s->source);
    s->source = NULL;
}

/* Delivers fn's answer, @g or NULL with @error and message @why (taken
 * over), through relay @r. */
static void deliver(future_t *r, future_t *g, int error, struct fut__why *why)
{
    if (g && forward(g, follow(r))) {
        release_relay(r);
        return;
    }
    r = claim(r);
    if (g)
        adopt(r, g);
    else {
        fut__fail_why(r, error, why);
        release_relay(r);
    }
}

static int run_step(future_t *f, void **result)
{
    (void)result;
    struct step *s = step_of(f);
    future_t *r = atomic_exchange(&s->relay, NULL);
    if (fut__is_settled(follow(r))) { /* cancelled: fn never runs */
        drop_source(s);
        release_relay(r);
        return 0;
    }
    errno = 0;
    future_t *g = s->fn(s->in_value, s->arg);
    int error = errno ? errno : EINVAL;
    drop_source(s);
    /* fn failed with task_fail()'s message: the relay gets it. */
    struct fut__frame *frame = fut__self.running;
    struct fut__why *why = g ? NULL : frame->why;
    frame->why = g ? frame->why : NULL;
    deliver(r, g, error, why);
    return 0;
}

/* f settled: queue the step to run fn, or pass f's failure on. */
static void input_settled(struct fut__inputs *in, size_t pos)
{
    (void)pos;
    struct step *s = step_of(in->owner);
    future_t *f = s->watch.target;
    if (f->error == 0) {
        s->in_value = f->value;
        if (f->value && fut__value_needs_f(f))
            s->source = future_retain(f);
        fut__enqueue(&s->base);
        return;
    }
    future_t *r = claim(atomic_exchange(&s->relay, NULL));
    fut__pass_on(r, f);
    release_relay(r);
    fut__settle(&s->base, 0, NULL); /* fn will never run */
}

static void step_detach(future_t *f)
{
    fut__inputs_detach(&step_of(f)->in);
}

/* A step that goes without delivering was cancelled with the relay it
 * feeds; one it was forwarded through goes with it. */
static void step_destroy(future_t *f)
{
    struct step *s = step_of(f);
    future_t *r = atomic_load(&s->relay);
    if (r)
        release_relay(r);
    drop_source(s);
}

static fut__fn step_site(const future_t *f)
{
    return (fut__fn)step_of((future_t *)f)->fn;
}

static struct fut__inputs *step_inputs(future_t *f)
{
    return &step_of(f)->in;
}

static const struct fut__ops step_ops = {.kind = "compose",
                                         .run = run_step,
                                         .detach = step_detach,
                                         .destroy = step_destroy,
                                         .site = step_site,
                                         .inputs = step_inputs,
                                         .decides = FUT_DECIDES_FIRST};

future_t *future_compose(future_t *f, compose_fn fn, void *arg)
{
    if (!f || !fn) {
        errno = EINVAL;
        return NULL;
    }
    struct relay *r =
        (struct relay *)fut__new(sizeof *r, &relay_ops, FUT_PENDING, 1);
    struct step *s =
        r ? (struct step *)fut__new(sizeof *s, &step_ops, FUT_PENDING, 1)
          : NULL;
    if (!s) {
        if (r)
            fut__free(&r->base); /* never seen by anyone */
        errno = ENOMEM;
        return NULL;
    }
    s->fn = fn;
    s->arg = arg;
    atomic_init(&s->relay, future_retain(&r->base));
    atomic_init(&r->feeder, &s->base); /* the step's creation reference */
    fut__set_exec(&r->base, f->exec);
    fut__set_exec(&s->base, f->exec);
    if (s->base.exec && s->base.exec->ops->pending_add) {
        s->base.exec->ops->pending_add(s->base.exec);
        s->base.tracked = true;
    }
    fut__inputs_init(&s->in, &s->base, &s->watch, &f, 1, input_settled);
    fut__inputs_arm(&s->in);
    return &r->base;
}
