// pool.cpp - futures::pool: submitting callables of every kind, the
// callable freed exactly once on every path, moves, the default pool.
#include "check.hpp"

#include <memory>
#include <string>

// In a namespace: futures.h's struct tags (pool, future, promise, scope,
// completion) are global names a using-declaration there would clash with.
namespace {

using futures::future;
using futures::pool;

TEST(pool_submits_values_and_void)
{
    pool p(2);
    future<int> a = p.submit([] { return 6 * 7; });
    future<std::string> b = p.submit([s = std::string("abc")] { return s + "d"; });
    std::atomic<int> ran{0};
    future<void> c = p.submit([&ran] { ran++; });
    future<int> d = p.submit_blocking([] { return 5; });
    CHECK_EQ(a.get(), 42);
    CHECK(b.get() == "abcd");
    c.get();
    CHECK_EQ(ran.load(), 1);
    CHECK_EQ(d.get(), 5);
    CHECK(&a.get() == &a.get()); // one value, owned by the future
}

static int plain_function() { return 3; }

TEST(pool_takes_every_kind_of_callable)
{
    pool p(2);
    int n = 0;
    future<int> mut = p.submit([n]() mutable { return ++n; });
    future<int> fp = p.submit(plain_function);
    std::function<int()> fn = [] { return 4; };
    future<int> sf = p.submit(fn);
    auto owned = std::make_unique<int>(9); // move-only capture
    future<int> mo = p.submit([o = std::move(owned)] { return *o; });
    CHECK_EQ(mut.get(), 1);
    CHECK_EQ(fp.get(), 3);
    CHECK_EQ(sf.get(), 4);
    CHECK_EQ(mo.get(), 9);
}

TEST(pool_frees_the_callable_once_after_it_ran)
{
    pool p(2);
    {
        counted c(1);
        future<int> ok = p.submit([c] { return c.value; });
        future<int> bad = p.submit([c]() -> int { throw std::runtime_error("no"); });
        CHECK_EQ(ok.get(), 1);
        CHECK_THROWS(futures::exception_error, bad.get());
    }
    p.destroy(); // the threads that ran them are gone: nothing left to free
    CHECK_EQ(counted::alive(), 0L);
}

TEST(pool_frees_the_callable_before_throwing_a_refusal)
{
    pool p(1);
    p.shutdown();
    counted c;
    CHECK_THROWS(ESHUTDOWN, p.submit([c] { return c.value; }));
    CHECK_THROWS(ESHUTDOWN, p.submit_blocking([c] { return c.value; }));
    CHECK_EQ(counted::alive(), 1L); // only c itself
    pool gone(std::move(p));
    CHECK(!p.valid());
    CHECK_THROWS(EINVAL, p.submit([c] { return c.value; })); // moved from
    CHECK_EQ(counted::alive(), 1L);
}

TEST(pool_frees_the_callable_of_a_task_cancelled_while_queued)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g);
    std::atomic<int> ran{0};
    future<int> f = p.submit([c = counted(), &ran] { ran++; return c.value; });
    CHECK(f.cancel());
    CHECK_EQ(counted::alive(), 0L); // freed by the cancel itself
    g.open();
    CHECK_THROWS(ECANCELED, f.get());
    p.destroy();
    CHECK_EQ(ran.load(), 0);
}

TEST(pool_frees_every_callable_pool_cancel_cancels)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g);
    std::vector<future<int>> fs;
    for (int i = 0; i < 50; i++)
        fs.push_back(p.submit([c = counted(i)] { return c.value; }));
    p.shutdown(POOL_CANCEL);
    CHECK_EQ(counted::alive(), 0L);
    g.open();
    for (auto &f : fs)
        CHECK_EQ(f.wait(), ECANCELED);
}

TEST(pool_frees_the_callable_when_the_library_lacks_memory)
{
    pool p(1);
    check::gate g;
    auto busy = saturate(p, 1, g); // the worker allocates nothing meanwhile
    // Each allocation of a submission fails in turn: the task's, the
    // deleter's record. Either way nothing is left behind.
    int refused = 0;
    for (long nth = 1; nth <= 3; nth++) {
        check::fail_allocation(nth);
        try {
            future<counted> f = p.submit([c = counted(7)] { return c; });
            f.cancel(); // queued behind the gate: it never makes a value
        } catch (const futures::error &e) {
            CHECK_EQ(e.code().value(), ENOMEM);
            refused++;
        }
        check::allocations_succeed();
        CHECK_EQ(counted::alive(), 0L);
    }
    CHECK(refused >= 2); // the task's allocation and the deleter's record
    g.open();
}

TEST(pool_moves_leave_empty_handles)
{
    pool a(1);
    pool b(std::move(a));
    CHECK(!a.valid());
    CHECK(b.valid());
    a.destroy(); // harmless
    pool c(1);
    c = std::move(b); // c's own pool is destroyed first
    CHECK(!b.valid());
    CHECK_EQ(c.submit([] { return 1; }).get(), 1);
    pool empty(std::move(c));
    empty = std::move(c); // from an empty one: empty now
    CHECK(!empty.valid());
}

TEST(pool_default_pool_is_borrowed)
{
    {
        pool d = pool::default_pool();
        CHECK(d.native_handle() == pool_default());
        CHECK_EQ(d.submit([] { return 2; }).get(), 2);
    } // not destroyed
    CHECK_EQ(pool::default_pool().submit([] { return 3; }).get(), 3);
}

TEST(pool_futures_outlive_their_pool)
{
    future<std::string> f;
    {
        pool p(1);
        f = p.submit([] { return std::string("kept"); });
    } // drains, then ends
    CHECK(f.ready());
    CHECK(f.get() == "kept");
}

} // namespace
