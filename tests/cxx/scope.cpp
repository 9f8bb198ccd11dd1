// scope.cpp - futures::scope: joins, the limit, cancels, failures, and
// the callables freed once on each of those paths.
#include "check.hpp"

#include <algorithm>
#include <string>

// In a namespace: futures.h's struct tags (pool, future, promise, scope,
// completion) are global names a using-declaration there would clash with.
namespace {

using futures::future;
using futures::pool;
using futures::scope;

TEST(scope_join_waits_for_every_task)
{
    pool p(2);
    scope s(p);
    std::atomic<int> ran{0};
    std::vector<future<int>> fs;
    for (int i = 0; i < 100; i++)
        fs.push_back(s.submit([&ran, i] { ran++; return i; }));
    s.join();
    CHECK_EQ(ran.load(), 100);
    for (int i = 0; i < 100; i++) {
        CHECK(fs[i].ready());
        CHECK_EQ(fs[i].get(), i);
    }
    CHECK_THROWS(ESHUTDOWN, s.submit([c = counted()] { return c.value; }));
    CHECK_EQ(counted::alive(), 0L);
}

TEST(scope_limit_holds)
{
    pool p(4);
    scope s(p);
    s.set_limit(2);
    std::atomic<int> now{0}, peak{0};
    for (int i = 0; i < 2000; i++)
        s.submit_blocking([&] {
            int n = ++now;
            int seen = peak.load();
            while (n > seen && !peak.compare_exchange_weak(seen, n))
                ;
            for (volatile int spin = 0; spin < 1000; spin = spin + 1)
                ; // stay running a moment, so others overlap if they may
            --now;
        });
    s.join();
    CHECK(peak.load() <= 2);
    CHECK(peak.load() >= 1);
}

TEST(scope_first_exception_cancels_the_rest_and_frees_their_callables)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g);
    scope s(p);
    future<int> bad = s.submit([]() -> int { throw std::runtime_error("first"); });
    std::atomic<int> ran{0};
    std::vector<future<int>> rest;
    for (int i = 0; i < 10; i++)
        rest.push_back(s.submit([c = counted(i), &ran] { ran++; return c.value; }));
    g.open(); // bad runs first and cancels what is queued behind it
    futures::error e = CAUGHT(s.join());
    CHECK_EQ(e.code().value(), futures::exception_error);
    CHECK(std::string(e.what()) == "first");
    CHECK(s.cancelled());
    CHECK_EQ(ran.load(), 0);
    for (auto &f : rest)
        CHECK_EQ(f.wait(), ECANCELED);
    CHECK_EQ(bad.wait(), futures::exception_error);
}

TEST(scope_cancel_frees_waiting_callables_and_later_submissions)
{
    pool p(2);
    scope s(p);
    s.set_limit(1);
    check::gate g;
    future<void> running = s.submit([&g, c = counted()] { g.pass(); });
    g.await_started(1);
    std::vector<future<counted>> waiting;
    for (int i = 0; i < 20; i++)
        waiting.push_back(s.submit([c = counted(i)] { return c; }));
    s.cancel();
    CHECK_EQ(counted::alive(), 1L); // only the running task's
    future<int> late = s.submit([c = counted()] { return c.value; });
    CHECK_EQ(counted::alive(), 1L); // refused: freed before submit returned
    CHECK_EQ(late.wait(), ECANCELED);
    g.open();
    CHECK_THROWS(ECANCELED, s.join());
    for (auto &f : waiting)
        CHECK_THROWS(ECANCELED, f.get());
    running.get(); // it ran to its end
}

TEST(scope_release_without_join_cancels)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g);
    future<counted> f;
    {
        scope s(p);
        f = s.submit([] { return counted(1); });
    } // cancelled, not waited for
    CHECK_THROWS(ECANCELED, f.get());
    g.open();
}

TEST(scope_on_the_default_pool_and_its_future)
{
    scope s;
    future<int> a = s.submit([] { return 1; });
    future<int> b = s.submit_blocking([] { return 2; });
    future<std::string> done = s.get_future().then([] { return std::string("joined"); });
    CHECK(done.get() == "joined");
    CHECK_EQ(a.get() + b.get(), 3);
}

TEST(scope_moves_and_refusals)
{
    pool p(1);
    scope a(p);
    scope b(std::move(a));
    CHECK(!a.valid());
    CHECK_THROWS(EINVAL, a.submit([c = counted()] { return c.value; }));
    CHECK_THROWS(EINVAL, a.join());
    CHECK_EQ(counted::alive(), 0L);
    pool empty(std::move(p));
    CHECK_THROWS(EINVAL, scope{p}); // an empty pool is no pool
    b.join();
    p = std::move(empty);
    scope c(p);
    p.shutdown();
    CHECK_THROWS(ESHUTDOWN, c.submit([x = counted()] { return x.value; }));
    CHECK_EQ(counted::alive(), 0L);
}

TEST(scope_nested_in_a_task_is_a_child)
{
    pool p(2);
    scope outer(p);
    check::gate g;
    std::atomic<bool> child_cancelled{false};
    future<void> f = outer.submit([&] {
        scope inner; // created inside outer's task: its child
        future<void> t = inner.submit([&g] { g.pass(); });
        g.await_started(1);
        outer.cancel();
        child_cancelled = inner.cancelled();
        g.open();
        t.wait();
    });
    f.get();
    CHECK(child_cancelled.load());
    CHECK_THROWS(ECANCELED, outer.join());
}

} // namespace

namespace {

// ~scope without a join: an exception skips join(), and the task still
// running uses state that goes with the stack frame. The destructor
// cancels the scope, then waits for the task: it sees the cancellation
// (the gate it is held at) and goes on touching the state, which must
// still be there; its last act is the flag, true once the scope is gone.
TEST(scope_destroyed_by_an_exception_waits_for_its_running_task)
{
    pool p(2);
    std::atomic<bool> started{false}, finished{false};
    try {
        std::vector<long> data(1000, 1);
        scope s(p);
        s.submit([&data, &started, &finished] {
            started = true;
            while (!task_cancelled()) // held until ~scope cancels
                std::this_thread::yield();
            long sum = 0;
            for (int round = 0; round < 200; round++)
                for (long &x : data)
                    sum += x++; // data must outlive this task
            finished = sum > 0;
        });
        while (!started)
            std::this_thread::yield();
        throw std::runtime_error("before join()");
    } catch (const std::runtime_error &) {
        CHECK(finished.load()); // the destructor waited for the task's end
    }
    CHECK(finished.load());
}

// A joined scope's destructor waits at once; a moved-to scope's old one
// is finished like a destroyed one.
TEST(scope_assignment_waits_for_the_old_scope)
{
    pool p(2);
    std::atomic<bool> started{false}, finished{false};
    scope s(p);
    s.submit([&] {
        started = true;
        while (!task_cancelled())
            std::this_thread::yield();
        for (volatile int spin = 0; spin < 100000; spin = spin + 1)
            ;
        finished = true;
    });
    while (!started)
        std::this_thread::yield();
    s = scope(p);
    CHECK(finished.load());
    s.submit([] {});
    s.join();
}

} // namespace
