// check.hpp - a small test harness for the C++ layer's tests: plain C++,
// so that the same program runs under ASan/UBSan and under TSan (Criterion
// cannot run under TSan, see docs/reliability.md).
//
// TEST(name) { ... } registers a test; main.cpp runs them in turn, each
// followed by the checks every test gets: the live futures return to their
// count before it (futures_live_count()), no counted object is left alive,
// and no failure went unobserved. CHECK() belongs on the test's own thread:
// it throws to end the test. Work on pool threads reports through atomics
// that the test's thread then checks.
#ifndef CXX_CHECK_HPP
#define CXX_CHECK_HPP

#include <futures.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace check {

struct failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct test {
    const char *name;
    void (*body)();
};

inline std::vector<test> &registry()
{
    static std::vector<test> tests;
    return tests;
}

struct registrar {
    registrar(const char *name, void (*body)()) { registry().push_back({name, body}); }
};

[[noreturn]] inline void fail(const char *file, int line, const std::string &what)
{
    throw failure(std::string(file) + ":" + std::to_string(line) + ": " + what);
}

} // namespace check

#define TEST(name)                                                  \
    static void test_##name();                                      \
    static check::registrar registrar_##name(#name, test_##name);   \
    static void test_##name()

#define CHECK(cond)                                                 \
    do {                                                            \
        if (!(cond))                                                \
            check::fail(__FILE__, __LINE__, "CHECK(" #cond ")");    \
    } while (0)

#define CHECK_EQ(a, b)                                                        \
    do {                                                                      \
        auto check_a_ = (a);                                                  \
        auto check_b_ = (b);                                                  \
        if (!(check_a_ == check_b_))                                          \
            check::fail(__FILE__, __LINE__,                                   \
                        "CHECK_EQ(" #a ", " #b "): " +                        \
                            std::to_string(check_a_) + " != " +               \
                            std::to_string(check_b_));                        \
    } while (0)

// Runs @stmt, which must throw futures::error with code @want.
#define CHECK_THROWS(want, stmt)                                              \
    do {                                                                      \
        int check_got_ = -1;                                                  \
        try {                                                                 \
            stmt;                                                             \
        } catch (const futures::error &check_e_) {                           \
            check_got_ = check_e_.code().value();                             \
        }                                                                     \
        if (check_got_ != (want))                                             \
            check::fail(__FILE__, __LINE__,                                   \
                        "CHECK_THROWS(" #want ", " #stmt "): got " +          \
                            std::to_string(check_got_));                      \
    } while (0)

// The futures::error @stmt throws (a test fails if it throws none).
#define CAUGHT(stmt)                                                          \
    ([&]() -> futures::error {                                                \
        try {                                                                 \
            stmt;                                                             \
        } catch (const futures::error &check_e_) {                           \
            return check_e_;                                                  \
        }                                                                     \
        check::fail(__FILE__, __LINE__, "no futures::error from " #stmt);    \
    }())

// An object that counts itself: every construction, copies and moves
// included, and every destruction. A callable that captures one is freed
// exactly once per copy when alive() is back to 0 and nothing crashed (a
// second free is ASan's to see); main.cpp checks alive() after each test.
struct counted {
    static std::atomic<long> &live()
    {
        static std::atomic<long> n{0};
        return n;
    }
    static long alive() { return live().load(); }

    int value;
    explicit counted(int v = 0) : value(v) { live()++; }
    counted(const counted &o) : value(o.value) { live()++; }
    counted(counted &&o) noexcept : value(o.value) { live()++; }
    counted &operator=(const counted &) = default;
    counted &operator=(counted &&) = default;
    ~counted() { live()--; }
};

namespace check {

// Whether every counted object has gone within a grace: one that a pool
// thread frees (the last reference it held to a future, dropped a moment
// after a waiter saw the outcome) may go just after the test looks.
inline bool counted_gone()
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (counted::alive() != 0) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::yield();
    }
    return true;
}

// Tasks that must be running wait here until the test opens it: the
// interleavings are forced, never slept into (tests/unit/helpers.h).
class gate {
public:
    void pass()
    {
        std::unique_lock<std::mutex> lock(m_);
        started_++;
        cv_.notify_all();
        cv_.wait(lock, [this] { return open_; });
    }
    void await_started(int n)
    {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return started_ >= n; });
    }
    void open()
    {
        std::lock_guard<std::mutex> lock(m_);
        open_ = true;
        cv_.notify_all();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    int started_ = 0;
    bool open_ = false;
};

// Occupies every one of @n threads of @p with a task waiting at @g; once
// it returns, whatever is submitted next is known to be queued.
inline std::vector<futures::future<void>> saturate(const futures::pool &p, int n,
                                                   gate &g)
{
    std::vector<futures::future<void>> busy;
    for (int i = 0; i < n; i++)
        busy.push_back(p.submit([&g] { g.pass(); }));
    g.await_started(n);
    return busy;
}

// The library's fault injection (lib/base.h): make the @nth allocation
// from now fail with ENOMEM.
} // namespace check
extern "C" void fut__fault_set(int site, long nth, bool persistent);
namespace check {
inline void fail_allocation(long nth) { fut__fault_set(0 /* FUT_FAULT_ALLOC */, nth, false); }
inline void allocations_succeed() { fut__fault_set(0, 0, false); }

} // namespace check

#endif
