// future.cpp - future<T>: values owned by the library and freed once,
// exceptions turned into failures, then() chains, moves.
#include "check.hpp"

#include <limits>
#include <memory>
#include <string>

// In a namespace: futures.h's struct tags (pool, future, promise, scope,
// completion) are global names a using-declaration there would clash with.
namespace {

using futures::future;
using futures::pool;

TEST(future_values_are_destroyed_once_with_the_last_future)
{
    pool p(2);
    future<counted> f = p.submit([] { return counted(5); });
    CHECK_EQ(f.get().value, 5);
    future<int> g = f.then([](const counted &c) { return c.value + 1; });
    CHECK_EQ(g.get(), 6);
    CHECK(counted::alive() >= 1); // f still holds its value
    future<counted> moved = std::move(f);
    CHECK(!f.valid());
    CHECK_EQ(moved.get().value, 5);
    moved = future<counted>(); // the last handle: the value goes, once
    CHECK(check::counted_gone()); // the continuation's thread has let go
}

TEST(future_exception_becomes_a_failure_with_its_message)
{
    pool p(1);
    future<int> f = p.submit([]() -> int { throw std::runtime_error("boom"); });
    futures::error e = CAUGHT(f.get());
    CHECK_EQ(e.code().value(), ENOTRECOVERABLE);
    CHECK(e.code().value() != ECANCELED);
    CHECK(e.has_message());
    CHECK(std::string(e.what()) == "boom");
    CHECK(std::string(f.error_message()) == "boom");
    CHECK_EQ(f.wait(), ENOTRECOVERABLE);
}

TEST(future_exception_of_any_type_is_caught)
{
    pool p(1);
    future<void> f = p.submit([] { throw 42; });
    futures::error e = CAUGHT(f.get());
    CHECK_EQ(e.code().value(), futures::exception_error);
    CHECK(std::string(e.what()) == "unknown exception");
}

TEST(future_a_thrown_futures_error_keeps_its_code)
{
    pool p(1);
    future<int> f = p.submit([]() -> int { throw futures::error(EIO, "disk"); });
    futures::error e = CAUGHT(f.get());
    CHECK_EQ(e.code().value(), EIO);
    CHECK(std::string(e.what()) == "disk");
    future<int> quiet = p.submit([]() -> int { throw futures::error(EACCES); });
    futures::error q = CAUGHT(quiet.get());
    CHECK_EQ(q.code().value(), EACCES);
    CHECK(!q.has_message());
    CHECK(quiet.error_message() == nullptr);
    // A task that ran and threw is not a cancelled one.
    future<int> c = p.submit([]() -> int { throw futures::error(ECANCELED); });
    CHECK_EQ(c.wait(), futures::exception_error);
}

TEST(future_then_chains_change_types)
{
    pool p(2);
    future<int> a = p.submit([] { return 20; });
    future<std::string> b = a.then([](int v) { return std::to_string(v + 1); });
    future<std::size_t> c = b.then([](const std::string &s) { return s.size(); });
    std::atomic<int> seen{0};
    future<void> d = c.then([&seen](std::size_t n) { seen = static_cast<int>(n); });
    future<int> e = d.then([] { return 7; });
    CHECK_EQ(e.get(), 7);
    CHECK_EQ(seen.load(), 2);
    CHECK(b.get() == "21");
}

TEST(future_then_runs_for_each_continuation_attached)
{
    pool p(2);
    future<int> a = p.submit([] { return 1; });
    std::vector<future<int>> more;
    for (int i = 0; i < 10; i++)
        more.push_back(a.then([i](int v) { return v + i; }));
    for (int i = 0; i < 10; i++)
        CHECK_EQ(more[i].get(), 1 + i);
}

TEST(future_then_on_a_failure_passes_it_on_and_frees_the_callable)
{
    pool p(1);
    future<int> bad = p.submit([]() -> int { throw std::runtime_error("first"); });
    std::atomic<int> ran{0};
    future<int> next = bad.then([c = counted(), &ran](int v) {
        ran++;
        return v + c.value;
    });
    futures::error e = CAUGHT(next.get());
    CHECK_EQ(e.code().value(), futures::exception_error);
    CHECK(std::string(e.what()) == "first");
    CHECK_EQ(ran.load(), 0);
    // The continuation settled without running: freed by now or a moment
    // after (main.cpp waits for counted objects to reach 0).
}

TEST(future_exception_in_a_continuation_fails_its_result)
{
    pool p(1);
    future<int> a = p.submit([] { return 1; });
    future<int> b = a.then([](int) -> int { throw std::logic_error("then threw"); });
    futures::error e = CAUGHT(b.get());
    CHECK_EQ(e.code().value(), futures::exception_error);
    CHECK(std::string(e.what()) == "then threw");
    CHECK_EQ(a.get(), 1);
}

TEST(future_a_long_chain_settles)
{
    pool p(2);
    future<int> f = p.submit([] { return 0; });
    for (int i = 0; i < 1000; i++)
        f = f.then([](int v) { return v + 1; });
    CHECK_EQ(f.get(), 1000);
}

TEST(future_empty_handles_are_safe)
{
    future<int> empty;
    CHECK(!empty.valid());
    CHECK(!empty.ready());
    CHECK_EQ(empty.wait(), EINVAL);
    CHECK(!empty.cancel());
    CHECK_THROWS(EINVAL, empty.get());
    CHECK_THROWS(EINVAL, empty.then([c = counted()](int) { return c.value; }));
    CHECK_EQ(counted::alive(), 0L); // the refused continuation was freed
    future<int> also = std::move(empty);
    CHECK(!also.valid());
}

TEST(future_cancel_before_it_runs)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g);
    future<counted> f = p.submit([] { return counted(1); });
    CHECK(f.cancel());
    g.open();
    futures::error e = CAUGHT(f.get());
    CHECK_EQ(e.code().value(), ECANCELED);
    CHECK(f.wait_for(std::chrono::seconds(0))); // settled: a poll says so
}

TEST(future_wait_inside_a_task_on_a_one_thread_pool)
{
    pool p(1);
    future<int> outer = p.submit([&p] {
        future<int> inner = p.submit([] { return 3; });
        return inner.get() * 2; // the pool lends a stand-in thread
    });
    CHECK_EQ(outer.get(), 6);
}

TEST(future_release_hands_the_reference_over)
{
    pool p(1);
    future<void> f = p.submit([] {});
    future_t *raw = f.release();
    CHECK(!f.valid());
    CHECK_EQ(future_wait(raw, nullptr), 0);
    future_release(raw);
    future<void> adopted = future<void>::adopt(future_delay(1000));
    adopted.get();
}

} // namespace

namespace {

// to_ns() saturates: no duration overflows on its way to nanoseconds
// (seconds::max() overflowed int64 nanoseconds, so wait_for() "for ever"
// returned false at once; a double of 1e300 or NaN was undefined).
TEST(future_timeouts_saturate)
{
    using namespace std::chrono;
    using futures::detail::to_ns;
    CHECK(to_ns(seconds::max()) == UINT64_MAX);
    CHECK(to_ns(hours(3000000)) == UINT64_C(10800000000000000000)); // past INT64_MAX
    CHECK(to_ns(hours(6000000)) == UINT64_MAX);
    CHECK(to_ns(duration<double>(1e300)) == UINT64_MAX);
    CHECK(to_ns(duration<double>(std::numeric_limits<double>::infinity())) == UINT64_MAX);
    CHECK(to_ns(duration<double>(std::numeric_limits<double>::quiet_NaN())) == 0);
    CHECK(to_ns(duration<double>(-1e300)) == 0);
    CHECK(to_ns(seconds::min()) == 0);
    CHECK(to_ns(seconds(-1)) == 0);
    CHECK(to_ns(nanoseconds(0)) == 0);
    CHECK(to_ns(nanoseconds(1)) == 1);
    CHECK(to_ns(seconds(3)) == UINT64_C(3000000000));
    CHECK(to_ns(duration<double, std::milli>(1.5)) == UINT64_C(1500000));

    // Settled from another thread once the wait has begun: a wait for
    // seconds::max() waits for it.
    futures::promise<int> p;
    future<int> f = p.get_future();
    std::atomic<bool> waiting{false};
    std::thread keeper([&] {
        while (!waiting)
            std::this_thread::yield();
        std::this_thread::sleep_for(milliseconds(20)); // let the wait begin
        p.set_value(1);
    });
    waiting = true;
    bool settled = f.wait_for(seconds::max());
    keeper.join();
    CHECK(settled);
    CHECK_EQ(f.get(), 1);
}

} // namespace

namespace {

// Every continuation of a future may run at once on its one value: each
// gets a const T& (a callable taking T gets a copy of its own).
TEST(future_continuations_get_a_const_value)
{
    pool p(2);
    future<std::string> f = p.submit([] { return std::string("shared"); });
    future<bool> is_const = f.then([](auto &v) {
        return std::is_const_v<std::remove_reference_t<decltype(v)>>;
    });
    CHECK(is_const.get());
    future<std::string> changed = f.then([](std::string v) {
        v += "!"; // its own copy
        return v;
    });
    CHECK(changed.get() == "shared!");
    CHECK(f.get() == "shared");
}

} // namespace

namespace {

// A move-only value: read through get()'s reference, taken in then().
// (get() on a temporary future of one is a static_assert: it copies.)
TEST(future_of_a_move_only_value)
{
    pool p(1);
    future<std::unique_ptr<int>> f = p.submit([] { return std::make_unique<int>(7); });
    CHECK_EQ(*f.get(), 7);
    future<int> g = f.then([](const std::unique_ptr<int> &u) { return *u + 1; });
    CHECK_EQ(g.get(), 8);
    futures::promise<std::unique_ptr<int>> pr;
    future<std::unique_ptr<int>> h = pr.get_future();
    pr.set_value(std::make_unique<int>(9));
    CHECK_EQ(*h.get(), 9);
    futures::completion<std::unique_ptr<int>> c;
    c.add(h);
    future<std::unique_ptr<int>> n = c.next();
    CHECK_EQ(*n.get(), 9);
}

} // namespace

namespace {

// own()'s ENOMEM fallback when the task cannot be cancelled (it runs) and
// cannot be waited for (EDEADLK: the caller is that task): the value the
// task makes afterwards still gets its owner, never leaks. The task is a
// plain C one, so its future has no deleter but the one own() records.
struct own_trial {
    std::atomic<future_t *> self{nullptr};
    std::atomic<int> error{-1};
};

int own_self_then_make_a_value(void *arg, void **result)
{
    own_trial &t = *static_cast<own_trial *>(arg);
    future_t *self;
    while (!(self = t.self.load()))
        std::this_thread::yield();
    int code = 0;
    check::fail_allocation(1); // the deleter's record
    try {
        futures::detail::own<counted>(future_retain(self));
    } catch (const futures::error &e) {
        code = e.code().value();
    }
    check::allocations_succeed();
    *result = new counted(4); // made after own() gave up its wait
    t.error = code;
    return 0;
}

TEST(future_value_gets_its_owner_when_memory_and_the_wait_fail)
{
    pool p(1);
    own_trial t;
    future_t *f = pool_submit(p.native_handle(), own_self_then_make_a_value, &t);
    CHECK(f != nullptr);
    t.self = f;
    while (t.error.load() < 0) // no library call meanwhile: the fault is the deleter's
        std::this_thread::yield();
    CHECK_EQ(t.error.load(), ENOMEM);
    void *value = nullptr;
    CHECK_EQ(future_wait(f, &value), 0);
    CHECK_EQ(static_cast<counted *>(value)->value, 4);
    future_release(f); // the last reference: the deleter own() recorded frees it
    // main.cpp checks that no counted object is left alive.
}

} // namespace
