/*
 * futures.hpp - libfutures for C++17: RAII handles over futures.h.
 *
 * A header-only layer; it adds no symbol to the library and links against
 * the same libfutures.a or libfutures.so as a C program. What it adds:
 *
 *  - Handles that own what they hold and are moved, never copied: pool,
 *    future<T>, promise<T>, scope, completion<T>. A moved-from handle is
 *    empty: destroying it does nothing, and using it fails with EINVAL as
 *    the C call given NULL does (valid() says which it is).
 *  - Any callable as a task or continuation: a lambda with captures, a
 *    function object, a function. The layer moves (or copies) it onto the
 *    heap and hands it to the library with the _ex calls (pool_submit_ex(),
 *    scope_submit_ex(), future_then_ex()), whose destructor rule frees it
 *    exactly once on every path: after it ran, when it is cancelled before
 *    it could run, or, when the submission is refused, before the call
 *    that refused it throws.
 *  - Typed values. A callable returning T makes a future<T>: the layer
 *    stores a new T as the C future's value and gives the future its
 *    deleter (future_set_result_free()), so the library owns the T and
 *    destroys it exactly once, when the last future sharing it goes. A
 *    callable returning void makes a future<void>.
 *  - Exceptions become failures. No exception crosses into the library's
 *    C frames: one escaping a task or continuation is caught at the
 *    boundary and the future fails with futures::exception_error
 *    (ENOTRECOVERABLE), the exception's what() as its failure message
 *    (task_fail(): truncated to 255 bytes; "unknown exception" for one
 *    not derived from std::exception). ECANCELED is never used for it, so
 *    a task that threw is never mistaken for one that was cancelled and
 *    still fails its scope. A futures::error that escapes fails the
 *    future with its own code and message instead, so a get() inside a
 *    continuation that throws passes the failure on unchanged; only
 *    ECANCELED becomes exception_error there too.
 *  - future::get() waits and returns the value or throws futures::error
 *    with the failure's code and message.
 *
 * A callable's destructor, and a value's, must not throw: the library
 * runs them from C frames (they are noexcept here, so one that throws ends
 * the program). Neither may a task end its thread (pthread_exit()).
 *
 * futures.h's struct tags (pool, future, promise, scope, completion) are
 * global names: a using-declaration of these classes at global scope
 * clashes with them. Write futures::pool, or put the using-declarations
 * in a namespace or a function.
 *
 * Everything else is futures.h's: where callbacks run, what settles when,
 * the error codes. The handles expose their C object (native_handle()) for
 * the calls this layer does not wrap.
 *
 * Thread safety: as the C API's. A handle itself is a plain object: two
 * threads may use one const handle at once (get(), wait(), then()), but
 * moving or assigning it needs the usual exclusion.
 */
#ifndef FUTURES_HPP
#define FUTURES_HPP

#include <futures.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace futures {

/*
 * The error a future fails with when its task or continuation threw an
 * exception that is not a futures::error: ENOTRECOVERABLE ("state not
 * recoverable": the callable did not finish). The library itself never
 * uses it, so seeing it says that a callable threw; the message says what.
 */
constexpr int exception_error = ENOTRECOVERABLE;

/*
 * futures::error - a failure: an errno value (code().value(), generic
 * category) and, when the failure had one, its message.
 *
 * get() and join() throw it; a task may throw it to fail with a code of its
 * choosing. what() is the failure's message when it has one, else the
 * code's description (strerror()). Copying never throws.
 */
class error : public std::system_error {
public:
    /* @code: a positive errno value; @message: NULL for none (copied). */
    explicit error(int code, const char *message = nullptr)
        : std::system_error(code, std::generic_category()),
          what_(message ? std::string(message)
                        : std::generic_category().message(code)),
          has_message_(message != nullptr)
    {
    }

    const char *what() const noexcept override { return what_.what(); }

    /* Whether what() is the failure's own message. */
    bool has_message() const noexcept { return has_message_; }

private:
    std::runtime_error what_; /* a reference-counted string: copies never throw */
    bool has_message_;
};

template <class T> class future;

namespace detail {

/* ------------------------------------------------ the C boundary -- */

template <class T> void delete_value(void *p) noexcept
{
    delete static_cast<T *>(p);
}

template <class F> void delete_callable(void *p) noexcept
{
    delete static_cast<F *>(p);
}

[[noreturn]] inline void throw_errno()
{
    int code = errno; /* before anything else can change it */
    throw error(code ? code : EINVAL);
}

/*
 * The failure the exception being handled stands for: calls
 * report(code, message) (message NULL for none) while the exception is
 * alive, and returns what report returns. Called only inside a catch
 * block; never throws.
 */
template <class Report> int report_current(Report &&report) noexcept
{
    try {
        throw;
    } catch (const error &e) {
        int code = e.code().value();
        if (code <= 0 || code == ECANCELED)
            code = exception_error; /* it ran: not a cancellation */
        return report(code, e.has_message() ? e.what() : nullptr);
    } catch (const std::exception &e) {
        return report(exception_error, e.what());
    } catch (...) {
        return report(exception_error, "unknown exception");
    }
}

/* For a task or continuation: the error to return, message recorded. */
inline int fail_current() noexcept
{
    return report_current([](int code, const char *message) {
        return message ? task_fail(code, "%s", message) : code;
    });
}

/* Runs @call and stores its outcome as a task's: a new R as *@result, or
 * nothing for void; an exception becomes the failure it stands for. */
template <class R, class Call> int run_into(void **result, Call &&call) noexcept
{
    try {
        if constexpr (std::is_void_v<R>) {
            std::forward<Call>(call)();
            *result = nullptr;
        } else {
            *result = new R(std::forward<Call>(call)());
        }
        return 0;
    } catch (...) {
        return fail_current();
    }
}

/* A task_fn over a callable of type F stored at @arg. */
template <class F, class R> int run_task(void *arg, void **result) noexcept
{
    F &fn = *static_cast<F *>(arg);
    return run_into<R>(result, [&]() -> decltype(auto) {
        return std::invoke(fn);
    });
}

/* A then_fn over a callable of type F, given a future<T>'s value. The
 * value is shared: every continuation of the future may run at once on
 * it, so each gets a const T& (a callable taking T gets its own copy). */
template <class T, class F, class R>
int run_then(void *value, void *arg, void **result) noexcept
{
    F &fn = *static_cast<F *>(arg);
    if constexpr (std::is_void_v<T>) {
        (void)value;
        return run_into<R>(result, [&]() -> decltype(auto) {
            return std::invoke(fn);
        });
    } else {
        if (!value)
            return task_fail(EINVAL, "%s", "a future<T> without a value");
        const T &v = *static_cast<const T *>(value);
        return run_into<R>(result, [&]() -> decltype(auto) {
            return std::invoke(fn, v);
        });
    }
}

/* What a callable makes: the type of a task's or continuation's value. */
template <class F> using task_result_t = std::decay_t<std::invoke_result_t<F &>>;

template <class T, class F> struct then_result {
    using type = std::decay_t<std::invoke_result_t<F &, const T &>>;
};
template <class F> struct then_result<void, F> {
    using type = std::decay_t<std::invoke_result_t<F &>>;
};
template <class T, class F> using then_result_t = typename then_result<T, F>::type;

/* Lets the layer's functions make handles from C futures and read them. */
struct access {
    template <class T> static future<T> adopt(future_t *f) noexcept
    {
        return future<T>(f);
    }
    template <class T> static future_t *handle(const future<T> &f) noexcept
    {
        return f.h_;
    }
};

/*
 * Takes over @f, a new reference to a future whose value will be a new R,
 * and makes the library own that value. Should the library lack the memory
 * to record the deleter (ENOMEM), the value has no owner: the future is
 * cancelled, or waited for if it already runs, its value deleted here, and
 * the error thrown. Should that wait fail (EDEADLK: @f can only settle
 * after the caller's own task; EAGAIN), the deleter is asked for again,
 * and until either works the layer polls both, a millisecond apart: the
 * value always gets an owner, never leaks. That wait is the one place the
 * layer blocks on a task's behalf, and only after an ENOMEM.
 */
template <class R> void disown(future_t *f) noexcept
{
    future_cancel(f); /* never runs, so never makes a value */
    for (;;) {
        bool settled = future_is_ready(f);
        void *value = nullptr;
        int rc = future_wait(f, &value);
        if (rc == 0) {
            delete_value<R>(value);
            return;
        }
        if (settled || future_is_ready(f)) {
            if (settled)
                return; /* it failed: no value */
            continue;   /* it settled meanwhile: read its outcome */
        }
        /* The wait failed, the task is still to finish: its value gets
         * the library's deleter after all, or the next round waits. */
        if (future_set_result_free(f, &delete_value<R>) == 0)
            return;
        future_wait_for(f, UINT64_C(1000000));
    }
}

template <class R> future<R> own(future_t *f)
{
    if (!f)
        throw_errno();
    if constexpr (!std::is_void_v<R>) {
        int rc = future_set_result_free(f, &delete_value<R>);
        if (rc) {
            disown<R>(f);
            future_release(f);
            throw error(rc);
        }
    }
    return access::adopt<R>(f);
}

/*
 * Moves @fn to the heap and hands it to @submit(task_fn, arg, arg_free),
 * one of the C _ex calls, which frees it exactly once from then on. The
 * copy is made before the C call: if it throws, C never saw it.
 */
template <class F, class Submit> auto submit_callable(F &&fn, Submit &&submit)
{
    using Fn = std::decay_t<F>;
    using R = task_result_t<Fn>;
    Fn *stored = new Fn(std::forward<F>(fn));
    return own<R>(submit(&run_task<Fn, R>, static_cast<void *>(stored),
                         &delete_callable<Fn>));
}

template <class T, class F> auto then_callable(future_t *f, F &&fn)
{
    using Fn = std::decay_t<F>;
    using R = then_result_t<T, Fn>;
    Fn *stored = new Fn(std::forward<F>(fn));
    return own<R>(future_then_ex(f, &run_then<T, Fn, R>, stored,
                                 &delete_callable<Fn>));
}

/* A timeout in nanoseconds for the C calls: negative (or NaN) is 0, and
 * anything past what uint64_t holds saturates to UINT64_MAX (for ever).
 * Converted through long double, so no duration (seconds::max(), a
 * duration<double> of 1e300) overflows on the way. */
template <class Rep, class Period>
std::uint64_t to_ns(const std::chrono::duration<Rep, Period> &d) noexcept
{
    using ld_ns = std::chrono::duration<long double, std::nano>;
    long double ns = std::chrono::duration_cast<ld_ns>(d).count();
    if (!(ns > 0)) /* NaN too */
        return 0;
    if (ns >= 1.8e19L) /* UINT64_MAX is about 1.845e19 */
        return UINT64_MAX;
    return static_cast<std::uint64_t>(ns);
}

/* ------------------------------------------- what futures share -- */

/* The reference every future<T> holds, and what does not depend on T. */
class future_base {
public:
    future_base(const future_base &) = delete;
    future_base &operator=(const future_base &) = delete;

    /* Has a future (false once moved from). */
    bool valid() const noexcept { return h_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    /* future_is_ready(): settled, never blocks. */
    bool ready() const noexcept { return future_is_ready(h_); }

    /* future_wait() without the value: 0 once it succeeded, or the error
     * get() would throw (the future's, or the wait's: EDEADLK, EAGAIN,
     * EINVAL when empty). Never throws. */
    int wait() const noexcept { return future_wait(h_, nullptr); }

    /* future_wait_for(): true once settled, false on timeout. */
    template <class Rep, class Period>
    bool wait_for(const std::chrono::duration<Rep, Period> &timeout) const noexcept
    {
        return future_wait_for(h_, to_ns(timeout));
    }

    /* future_cancel(): true if this call cancelled it (it will never run). */
    bool cancel() const noexcept { return future_cancel(h_); }

    /* future_error_message(): the failure's message, or NULL. Lives as long
     * as the future. */
    const char *error_message() const noexcept
    {
        return future_error_message(h_);
    }

    /* The C future, borrowed: still this handle's. */
    future_t *native_handle() const noexcept { return h_; }

    /* Gives up the C future's reference to the caller (future_release()
     * it); the handle is empty afterwards. */
    future_t *release() noexcept { return std::exchange(h_, nullptr); }

protected:
    future_base() noexcept = default;
    explicit future_base(future_t *h) noexcept : h_(h) {}
    future_base(future_base &&o) noexcept : h_(o.release()) {}
    future_base &operator=(future_base &&o) noexcept
    {
        if (this != &o) {
            future_release(h_);
            h_ = o.release();
        }
        return *this;
    }
    ~future_base() { future_release(h_); }

    /* Waits; the value, or throws the failure. */
    void *wait_value() const
    {
        void *value = nullptr;
        int rc = future_wait(h_, &value);
        if (rc)
            throw error(rc, future_error_message(h_));
        return value;
    }

    future_t *h_ = nullptr;
};

} // namespace detail

/* ------------------------------------------------------------ futures -- */

/*
 * future<T> - the outcome of a task, a continuation or a promise: a T, or
 * a failure (an errno value and maybe a message).
 *
 * Ownership: one reference to the C future; the T is the library's, shared
 * by every future that passes it on, and destroyed once the last of them
 * goes. Move-only. Destroying a future whose task has not run does not
 * cancel it (cancel() does): the task runs, fire and forget.
 */
template <class T> class future : public detail::future_base {
    static_assert(std::is_same_v<T, std::decay_t<T>> && !std::is_array_v<T>,
                  "future<T>: T is a plain object type (no reference, "
                  "const or array)");

public:
    using value_type = T;

    future() noexcept = default; /* empty */

    /*
     * get() - wait, then the value; or throw futures::error with the
     * failure's code and message (ECANCELED when cancelled).
     *
     * The reference lives as long as this future (or any future sharing the
     * value). The value is shared with every continuation: read it; change
     * it only where nothing else reads it. Blocks as future_wait() does:
     * inside a pool task it does not deadlock. On a temporary future
     * (when_all(fs).get(), c.next().get()) it returns a copy instead,
     * since the future, and the value with it, may go at the end of the
     * expression; the value may be shared, so it is never moved from.
     * That copy needs a copyable T: for a move-only T (std::unique_ptr)
     * keep the future in a variable and read the value through get()'s
     * reference, or take it in a then() continuation.
     */
    const T &get() const &
    {
        void *value = wait_value();
        if (!value)
            throw error(EINVAL, "a future<T> without a value");
        return *static_cast<const T *>(value);
    }
    T get() const &&
    {
        static_assert(std::is_copy_constructible_v<T>,
                      "future<T>::get() on a temporary future returns a copy, "
                      "and T is not copyable: keep the future in a variable "
                      "and use the const T& its get() returns");
        return static_cast<const future &>(*this).get();
    }

    /*
     * then() - a future of @fn(value) once this one has succeeded.
     *
     * @fn is called with a const T& (so it may take T, a copy of its own,
     * or const T&; not T&: every continuation of this future may run at
     * once on the one value) where future_then() runs continuations,
     * never inside this call; it may
     * return a value (of type U: future<U>) or nothing (future<void>).
     * A @fn that returns a future makes a future of that future (get()
     * the inner one); nothing flattens it as future_compose() would.
     * If this future fails, the result fails with its error and message
     * and @fn never runs. An exception from @fn fails the result (see the
     * top). This future is not consumed: any number of continuations may
     * be attached. @fn is destroyed exactly once, whichever way it goes.
     * Errors: throws futures::error (EINVAL for an empty future, ENOMEM).
     */
    template <class F> auto then(F &&fn) const
    {
        return detail::then_callable<T>(h_, std::forward<F>(fn));
    }

private:
    friend struct detail::access;
    explicit future(future_t *h) noexcept : future_base(h) {}
};

/* future<void> - an outcome with no value: success, or a failure. */
template <> class future<void> : public detail::future_base {
public:
    using value_type = void;

    future() noexcept = default;

    /* get() - wait; return on success, or throw futures::error. */
    void get() const { (void)wait_value(); }

    /* then() - @fn() once this one has succeeded; as future<T>::then(). */
    template <class F> auto then(F &&fn) const
    {
        return detail::then_callable<void>(h_, std::forward<F>(fn));
    }

    /*
     * Takes over @f, a reference to a C future whose value is not read
     * (when_all(), scope_future(), future_delay(), a C task): the handle
     * releases it. A NULL @f makes an empty handle.
     */
    static future adopt(future_t *f) noexcept { return future(f); }

private:
    friend struct detail::access;
    explicit future(future_t *h) noexcept : future_base(h) {}
};

/* --------------------------------------------------------------- pools -- */

/*
 * pool - a pool of worker threads (pool_create()).
 *
 * Ownership: the pool is this handle's, destroyed with it (pool_destroy():
 * it drains, then waits for its threads), unless it is the borrowed
 * default_pool(). Move-only. Futures from the pool outlive it.
 */
class pool {
public:
    /* pool_create(@nthreads), 0 for one per CPU.
     * Errors: throws futures::error (EINVAL, ENOMEM, EAGAIN). */
    explicit pool(std::size_t nthreads = 0) : p_(pool_create(nthreads))
    {
        if (!p_)
            detail::throw_errno();
    }

    /* pool_default(), borrowed: never destroyed by a handle. Ask again
     * after futures_shutdown(). Errors: throws futures::error. */
    static pool default_pool()
    {
        pool_t *p = pool_default();
        if (!p)
            detail::throw_errno();
        return pool(p, true);
    }

    pool(pool &&o) noexcept
        : p_(std::exchange(o.p_, nullptr)), borrowed_(o.borrowed_)
    {
    }
    pool &operator=(pool &&o) noexcept
    {
        if (this != &o) {
            destroy();
            p_ = std::exchange(o.p_, nullptr);
            borrowed_ = o.borrowed_;
        }
        return *this;
    }
    pool(const pool &) = delete;
    pool &operator=(const pool &) = delete;
    ~pool() { destroy(); }

    /*
     * submit() - run @fn() on one of the pool's threads: pool_submit_ex().
     *
     * Returns a future of what @fn returns (future<void> for nothing).
     * @fn is moved (or copied) to the heap and destroyed exactly once:
     * after it ran, when cancelled before it could run (cancel(),
     * POOL_CANCEL), or before this call throws.
     * Errors: throws futures::error (EINVAL for an empty pool, ENOMEM,
     * ESHUTDOWN after shutdown(), ECHILD in a child of fork()), or what
     * copying @fn throws.
     */
    template <class F> auto submit(F &&fn) const
    {
        return detail::submit_callable(
            std::forward<F>(fn), [this](task_fn t, void *arg, void (*arg_free)(void *)) {
                return pool_submit_ex(p_, t, arg, arg_free);
            });
    }

    /* submit_blocking() - submit() for a job that blocks (I/O, sleeps):
     * pool_submit_blocking_ex(), on the pool's blocking threads. */
    template <class F> auto submit_blocking(F &&fn) const
    {
        return detail::submit_callable(
            std::forward<F>(fn), [this](task_fn t, void *arg, void (*arg_free)(void *)) {
                return pool_submit_blocking_ex(p_, t, arg, arg_free);
            });
    }

    /* pool_shutdown(): refuse new tasks; POOL_DRAIN runs the queued ones,
     * POOL_CANCEL cancels them. Returns at once. */
    void shutdown(int mode = POOL_DRAIN) const noexcept
    {
        pool_shutdown(p_, mode);
    }

    /* Destroys the pool now (pool_destroy()) rather than with the handle,
     * which is empty afterwards. Nothing for a borrowed pool. */
    void destroy() noexcept
    {
        pool_t *p = std::exchange(p_, nullptr);
        if (!borrowed_)
            pool_destroy(p);
    }

    bool valid() const noexcept { return p_ != nullptr; }
    pool_t *native_handle() const noexcept { return p_; }

private:
    pool(pool_t *p, bool borrowed) noexcept : p_(p), borrowed_(borrowed) {}
    pool_t *p_;
    bool borrowed_ = false;
};

/* ------------------------------------------------------------ promises -- */

/*
 * promise<T> - the writing end of a future<T>, settled by hand, from any
 * thread (promise_create()).
 *
 * Ownership: the promise is this handle's. Destroying it unsettled fails
 * its future with EPIPE (a broken promise), so no waiter hangs. A value
 * offered is the library's from then on. Move-only.
 * Errors: the constructor throws futures::error (ENOMEM).
 */
template <class T> class promise {
public:
    promise() : p_(promise_create())
    {
        if (!p_)
            detail::throw_errno();
        f_ = promise_future(p_);
        if constexpr (!std::is_void_v<T>) {
            /* Before anything can offer a value, so every value has its
             * owner, the late ones (EALREADY) included. */
            int rc = future_set_result_free(f_, &detail::delete_value<T>);
            if (rc) {
                discard();
                throw error(rc);
            }
        }
    }

    promise(promise &&o) noexcept
        : p_(std::exchange(o.p_, nullptr)), f_(std::exchange(o.f_, nullptr)),
          retrieved_(o.retrieved_)
    {
    }
    promise &operator=(promise &&o) noexcept
    {
        if (this != &o) {
            discard();
            p_ = std::exchange(o.p_, nullptr);
            f_ = std::exchange(o.f_, nullptr);
            retrieved_ = o.retrieved_;
        }
        return *this;
    }
    promise(const promise &) = delete;
    promise &operator=(const promise &) = delete;
    ~promise() { discard(); }

    /* The promise's future; each call returns another handle to it.
     * Errors: throws futures::error (EINVAL for an empty promise). */
    future<T> get_future()
    {
        if (!f_)
            throw error(EINVAL);
        retrieved_ = true;
        return detail::access::adopt<T>(future_retain(f_));
    }

    /*
     * set_value() - settle the future with a T made from @args.
     * Returns true, or false if it had settled already (the first
     * settlement wins, a cancellation included; the T is destroyed).
     * Errors: throws futures::error (EINVAL for an empty promise), or
     * what making the T throws.
     */
    template <class... Args> bool set_value(Args &&...args)
    {
        if constexpr (std::is_void_v<T>) {
            static_assert(sizeof...(Args) == 0, "promise<void>::set_value()");
            return settled(promise_resolve(p_, nullptr));
        } else {
            T *value = new T(std::forward<Args>(args)...);
            int rc = promise_resolve(p_, value);
            if (rc != 0 && rc != EALREADY)
                delete value; /* refused before the library took it */
            return settled(rc);
        }
    }

    /*
     * set_error() - fail the future with @code (positive) and, when not
     * empty, @message. Returns as set_value() does.
     * Errors: throws futures::error (EINVAL: empty promise, bad @code).
     */
    bool set_error(int code, const std::string &message = {})
    {
        return settled(message.empty()
                           ? promise_reject(p_, code)
                           : promise_reject_message(p_, code, "%s",
                                                    message.c_str()));
    }

    /* set_exception() - fail the future as a task that threw @e would
     * (see the top). Returns as set_value() does.
     * Errors: throws futures::error (EINVAL: empty promise, or a null @e,
     * which leaves the future unsettled). */
    bool set_exception(std::exception_ptr e)
    {
        if (!e)
            throw error(EINVAL);
        int rc;
        try {
            std::rethrow_exception(e);
        } catch (...) {
            rc = detail::report_current([this](int code, const char *message) {
                return message ? promise_reject_message(p_, code, "%s", message)
                               : promise_reject(p_, code);
            });
        }
        return settled(rc);
    }

    bool valid() const noexcept { return p_ != nullptr; }
    promise_t *native_handle() const noexcept { return p_; }

private:
    static bool settled(int rc)
    {
        if (rc == EALREADY)
            return false;
        if (rc)
            throw error(rc);
        return true;
    }

    /* Releases the promise (EPIPE if unsettled) and its future. A future
     * nobody was given is waited for first, which settled it must be by
     * then: so its broken promise is observed, never reported. */
    void discard() noexcept
    {
        promise_release(std::exchange(p_, nullptr));
        future_t *f = std::exchange(f_, nullptr);
        if (f && !retrieved_)
            future_wait(f, nullptr);
        future_release(f);
    }

    promise_t *p_;
    future_t *f_ = nullptr; /* kept: the value's deleter is set on it */
    bool retrieved_ = false;
};

/* -------------------------------------------------------------- scopes -- */

/*
 * scope - tasks that belong together (scope_create()): joined together,
 * the first failure cancelling the rest, an optional limit on how many run.
 *
 * Ownership: the scope is this handle's. Destroying it (or assigning to
 * it) without a join() or get_future() cancels it (scope_cancel(): queued
 * and waiting tasks never run, task_cancelled() turns true in the running
 * ones), and then waits for every task it accepted to finish, as
 * std::jthread joins in its destructor: so a task that captured locals by
 * reference never outlives them when an exception (or an early return)
 * skips join(). A joined scope is waited for too (at once after join()).
 * The destructor may therefore block, for as long as a running task takes
 * to return: make long tasks check task_cancelled(). Its outcome is
 * ignored (join() is where failures are read). Should that wait fail
 * (scope_join()'s EDEADLK, EAGAIN, ENOMEM: destroyed where it cannot
 * wait), the scope is released without waiting, as scope_release() does.
 * Destroying a scope inside one of its own tasks waits for that task, a
 * deadlock, as join() there would. Move-only.
 * Errors: the constructors throw futures::error (ENOMEM, EAGAIN).
 */
class scope {
public:
    /* A scope on the default pool. */
    scope() : s_(scope_create(nullptr))
    {
        if (!s_)
            detail::throw_errno();
    }

    /* A scope whose tasks run on @p, which must outlive its submissions. */
    explicit scope(const pool &p) : s_(create(p.native_handle())) {}

    scope(scope &&o) noexcept
        : s_(std::exchange(o.s_, nullptr)), joined_(o.joined_.load())
    {
    }
    scope &operator=(scope &&o) noexcept
    {
        if (this != &o) {
            finish();
            s_ = std::exchange(o.s_, nullptr);
            joined_ = o.joined_.load();
        }
        return *this;
    }
    scope(const scope &) = delete;
    scope &operator=(const scope &) = delete;
    ~scope() { finish(); }

    /*
     * submit() - @fn() as a task of the scope: scope_submit_ex(), with
     * pool::submit()'s ownership of @fn. Once the scope is cancelled it
     * returns a future already failed with ECANCELED (@fn destroyed).
     * Errors: throws futures::error (EINVAL, ENOMEM, ESHUTDOWN once
     * joined or when the pool takes no work, ECHILD).
     */
    template <class F> auto submit(F &&fn) const
    {
        return detail::submit_callable(
            std::forward<F>(fn), [this](task_fn t, void *arg, void (*arg_free)(void *)) {
                return scope_submit_ex(s_, t, arg, arg_free);
            });
    }

    /* submit_blocking() - submit() on the pool's blocking threads. */
    template <class F> auto submit_blocking(F &&fn) const
    {
        return detail::submit_callable(
            std::forward<F>(fn), [this](task_fn t, void *arg, void (*arg_free)(void *)) {
                return scope_submit_blocking_ex(s_, t, arg, arg_free);
            });
    }

    /* scope_set_limit(): at most @max_running tasks at once, 0 for none. */
    void set_limit(std::size_t max_running) const
    {
        if (int rc = scope_set_limit(s_, max_running))
            throw error(rc);
    }

    /*
     * join() - wait for every task the scope accepted, then close it
     * (scope_join()). Throws futures::error with the first failure's code
     * and message, or ECANCELED if the scope was cancelled.
     */
    void join() const { get_future().get(); }

    /* get_future() - join() without blocking (scope_future()). */
    future<void> get_future() const
    {
        joined_ = true; /* before: the future closes it as a join does */
        future_t *f = scope_future(s_);
        if (!f)
            detail::throw_errno();
        return future<void>::adopt(f);
    }

    void cancel() const noexcept { scope_cancel(s_); }
    bool cancelled() const noexcept { return scope_cancelled(s_); }
    bool valid() const noexcept { return s_ != nullptr; }
    scope_t *native_handle() const noexcept { return s_; }

private:
    /* Not scope_create(NULL), which would mean the default pool: an empty
     * pool handle is an error. */
    static scope_t *create(pool_t *p)
    {
        if (!p)
            throw error(EINVAL);
        scope_t *s = scope_create(p);
        if (!s)
            detail::throw_errno();
        return s;
    }

    /* Cancels the scope unless it was joined, waits for its tasks (the
     * outcome ignored; a wait that fails releases without one), releases
     * it. The handle is empty afterwards. */
    void finish() noexcept
    {
        scope_t *s = std::exchange(s_, nullptr);
        if (!s)
            return;
        if (!joined_)
            scope_cancel(s);
        (void)scope_join(s);
        scope_release(s);
    }

    scope_t *s_;
    mutable std::atomic<bool> joined_{false}; /* join() or get_future() */
};

/* --------------------------------------------------- completion queues -- */

/*
 * completion<T> - futures handed back in the order they settle
 * (completion_create()). Ownership: the queue is this handle's; futures
 * it has not handed back are released with it (they still run).
 * Move-only. Errors: the constructor throws futures::error (ENOMEM).
 */
template <class T> class completion {
public:
    completion() : c_(completion_create())
    {
        if (!c_)
            detail::throw_errno();
    }
    completion(completion &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    completion &operator=(completion &&o) noexcept
    {
        if (this != &o) {
            completion_release(c_);
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    completion(const completion &) = delete;
    completion &operator=(const completion &) = delete;
    ~completion() { completion_release(c_); }

    /* add() - watch @f (the queue takes a reference of its own).
     * Errors: throws futures::error (EINVAL for an empty @f, ENOMEM). */
    void add(const future<T> &f) const
    {
        if (int rc = completion_add(c_, detail::access::handle(f)))
            throw error(rc);
    }

    /*
     * next() - the next added future to settle, waiting at most @timeout
     * (for ever without one). An empty future (!valid()) when nothing
     * settled in time (ETIMEDOUT) or every added future has been handed
     * back (ENOENT): while (auto f = c.next()) reads them all. A future,
     * not a std::optional, so c.next().get() is get() on a temporary and
     * returns a copy; c.next()->get() would return a reference into a
     * future gone at the end of the statement.
     * Errors: throws futures::error (EINVAL, or a wait's EDEADLK, EAGAIN).
     */
    template <class Rep, class Period>
    future<T> next(const std::chrono::duration<Rep, Period> &timeout) const
    {
        return next_ns(detail::to_ns(timeout));
    }
    future<T> next() const { return next_ns(UINT64_MAX); }

    bool valid() const noexcept { return c_ != nullptr; }
    completion_t *native_handle() const noexcept { return c_; }

private:
    future<T> next_ns(std::uint64_t ns) const
    {
        future_t *f = completion_next(c_, ns);
        if (f)
            return detail::access::adopt<T>(f);
        if (errno == ETIMEDOUT || errno == ENOENT)
            return future<T>();
        detail::throw_errno();
    }

    completion_t *c_;
};

/* --------------------------------------------------------- combinators -- */

/*
 * when_all() - a future of every value of @fs, in @fs's order, once all
 * have succeeded (when_all(), then a copy of each value); a future<void>
 * for futures of void; T must be copyable. If one fails, the result fails with the error and
 * message of the lowest-index input that failed, once all have settled.
 * Borrows @fs: the handles stay the caller's. Errors: throws
 * futures::error (EINVAL for an empty handle in @fs, ENOMEM).
 */
template <class T> auto when_all(const std::vector<future<T>> &fs)
{
    static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>,
                  "when_all(fs) copies each value into its vector: T must be "
                  "copyable (for a move-only T, wait for each future of fs "
                  "instead)");
    std::vector<future_t *> raw;
    raw.reserve(fs.size());
    for (const future<T> &f : fs)
        raw.push_back(detail::access::handle(f));
    future_t *all = ::when_all(raw.data(), raw.size());
    if (!all)
        detail::throw_errno();
    future<void> done = future<void>::adopt(all);
    if constexpr (std::is_void_v<T>) {
        return done;
    } else {
        /* The values stay in the inputs: the continuation keeps its own
         * references to them and copies each out. */
        std::vector<future<T>> inputs;
        inputs.reserve(raw.size());
        for (future_t *f : raw)
            inputs.push_back(detail::access::adopt<T>(future_retain(f)));
        return done.then([inputs = std::move(inputs)]() {
            std::vector<T> values;
            values.reserve(inputs.size());
            for (const future<T> &f : inputs)
                values.push_back(f.get()); /* settled: returns at once */
            return values;
        });
    }
}

/*
 * when_any() - a future of the index in @fs of the first future to settle,
 * whether it succeeded or failed (::when_any()). Borrows @fs.
 * Errors: throws futures::error (EINVAL: @fs empty or holding an empty
 * handle, ENOMEM).
 */
template <class T> future<std::size_t> when_any(const std::vector<future<T>> &fs)
{
    std::vector<future_t *> raw;
    raw.reserve(fs.size());
    for (const future<T> &f : fs)
        raw.push_back(detail::access::handle(f));
    future_t *any = ::when_any(raw.data(), raw.size());
    if (!any)
        detail::throw_errno();
    future_t *index = future_then(
        any,
        [](void *value, void *, void **result) noexcept -> int {
            /* The C value is the index itself, not a pointer to free. */
            return detail::run_into<std::size_t>(result, [value] {
                return static_cast<std::size_t>(
                    reinterpret_cast<std::uintptr_t>(value));
            });
        },
        nullptr);
    int saved = errno; /* future_then()'s, should it have failed */
    future_release(any);
    errno = saved;
    return detail::own<std::size_t>(index);
}

} // namespace futures

#endif /* FUTURES_HPP */
