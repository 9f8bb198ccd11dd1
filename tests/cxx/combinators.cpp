// combinators.cpp - when_all, when_any and completion<T>: values in input
// order, failures with their messages, the completion queue's order.
#include "check.hpp"

#include <string>

// In a namespace: futures.h's struct tags (pool, future, promise, scope,
// completion) are global names a using-declaration there would clash with.
namespace {

using futures::completion;
using futures::future;
using futures::pool;
using futures::promise;

TEST(when_all_values_come_in_input_order)
{
    // Settled in reverse: the vector still follows the inputs.
    std::vector<promise<std::string>> ps(5);
    std::vector<future<std::string>> fs;
    for (auto &p : ps)
        fs.push_back(p.get_future());
    future<std::vector<std::string>> all = futures::when_all(fs);
    for (int i = 4; i >= 0; i--) {
        CHECK(!all.ready());
        ps[i].set_value(std::to_string(i));
    }
    const std::vector<std::string> &v = all.get();
    CHECK_EQ(v.size(), std::size_t{5});
    for (int i = 0; i < 5; i++)
        CHECK(v[i] == std::to_string(i));
}

TEST(when_all_of_tasks_and_of_nothing)
{
    pool p(3);
    std::vector<future<int>> fs;
    for (int i = 0; i < 100; i++)
        fs.push_back(p.submit([i] { return i * i; }));
    const std::vector<int> &v = futures::when_all(fs).get();
    for (int i = 0; i < 100; i++)
        CHECK_EQ(v[i], i * i);
    std::vector<future<int>> none;
    CHECK(futures::when_all(none).get().empty());
}

TEST(when_all_values_are_copies_freed_once)
{
    pool p(2);
    std::vector<future<counted>> fs;
    for (int i = 0; i < 4; i++)
        fs.push_back(p.submit([i] { return counted(i); }));
    {
        future<std::vector<counted>> all = futures::when_all(fs);
        CHECK_EQ(all.get()[3].value, 3);
    }
    fs.clear();
    // Every value, the inputs' and the vector's, is gone (checked after
    // the test by main.cpp: counted objects back to 0).
}

TEST(when_all_fails_with_the_lowest_index_failure)
{
    pool p(2);
    std::vector<future<int>> fs;
    fs.push_back(p.submit([] { return 1; }));
    fs.push_back(p.submit([]() -> int { throw std::runtime_error("second"); }));
    fs.push_back(p.submit([]() -> int { throw futures::error(EIO, "third"); }));
    futures::error e = CAUGHT(futures::when_all(fs).get());
    CHECK_EQ(e.code().value(), futures::exception_error);
    CHECK(std::string(e.what()) == "second");
    CHECK_EQ(fs[2].wait(), EIO);
}

TEST(when_all_of_void_futures)
{
    pool p(2);
    std::atomic<int> ran{0};
    std::vector<future<void>> fs;
    for (int i = 0; i < 10; i++)
        fs.push_back(p.submit([&ran] { ran++; }));
    future<void> all = futures::when_all(fs);
    all.get();
    CHECK_EQ(ran.load(), 10);
    std::vector<future<void>> holed(1);
    CHECK_THROWS(EINVAL, futures::when_all(holed)); // an empty handle
}

TEST(when_any_gives_the_first_index)
{
    std::vector<promise<int>> ps(3);
    std::vector<future<int>> fs;
    for (auto &p : ps)
        fs.push_back(p.get_future());
    future<std::size_t> any = futures::when_any(fs);
    ps[2].set_value(7);
    CHECK_EQ(any.get(), std::size_t{2});
    CHECK_EQ(fs[any.get()].get(), 7);
    std::vector<future<int>> none;
    CHECK_THROWS(EINVAL, futures::when_any(none));
}

TEST(completion_hands_futures_back_in_settlement_order)
{
    std::vector<promise<int>> ps(3);
    completion<int> c;
    for (auto &p : ps)
        c.add(p.get_future());
    CHECK(!c.next(std::chrono::milliseconds(0)).valid()); // nothing yet
    int order[] = {2, 0, 1};
    for (int i : order)
        ps[i].set_value(i * 10);
    for (int i : order) {
        future<int> f = c.next();
        CHECK(f.valid());
        CHECK_EQ(f.get(), i * 10);
    }
    CHECK(!c.next().valid()); // ENOENT: every one handed back
}

TEST(completion_of_tasks_and_moves)
{
    pool p(2);
    completion<std::string> c;
    for (int i = 0; i < 20; i++)
        c.add(p.submit([i] { return std::to_string(i); }));
    completion<std::string> d(std::move(c));
    CHECK(!c.valid());
    CHECK_THROWS(EINVAL, c.add(future<std::string>()));
    int seen = 0;
    while (auto f = d.next())
        seen += std::stoi(f.get()) >= 0;
    CHECK_EQ(seen, 20);
    completion<int> dropped; // released with futures it never handed back
    dropped.add(p.submit([] { return 1; }));
}

} // namespace

namespace {

// next() returns the future itself, so next().get() is get() on a
// temporary: a copy, where an optional's ->get() returned a reference into
// a future gone at the end of the statement (the queue held the last
// reference to it).
TEST(completion_next_get_returns_a_value_that_outlives_the_statement)
{
    pool p(1);
    completion<std::string> c;
    c.add(p.submit([] { return std::string(100, 'x'); }));
    static_assert(std::is_same_v<decltype(c.next()), future<std::string>>,
                  "next() returns a future, never an optional");
    static_assert(std::is_same_v<decltype(c.next().get()), std::string>,
                  "get() on next()'s temporary returns a copy");
    const std::string &s = c.next().get(); // a copy, its life extended
    CHECK_EQ(s.size(), std::size_t{100});
    CHECK(s == std::string(100, 'x'));
    future<std::string> none = c.next(std::chrono::seconds(1));
    CHECK(!none.valid()); // ENOENT: an empty future
    CHECK(!none);
}

} // namespace
