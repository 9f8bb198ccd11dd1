// main.cpp - runs the C++ layer's tests (check.hpp), each followed by the
// checks every test gets, and prints "N passed, M failed" last.
//
//   usage: cxx_tests [NAME...]   (only the tests whose names contain NAME)
#include "check.hpp"

#include <chrono>
#include <thread>

namespace {

std::atomic<long> unobserved{0};

void count_unobserved(const futures_failure *failure, void *)
{
    unobserved++;
    futures_unobserved_print(failure, nullptr);
}

// Pool threads may drop their last references a moment after a waiter saw
// the outcome: the count gets a grace to come back, polled, not slept on.
bool live_futures_return_to(std::size_t before)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (futures_live_count() != before) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::yield();
    }
    return true;
}

bool selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (std::strstr(name, argv[i]))
            return true;
    return false;
}

std::string run(const check::test &t)
{
    std::size_t before = futures_live_count();
    long unobserved_before = unobserved.load();
    try {
        t.body();
    } catch (const check::failure &f) {
        return f.what();
    } catch (const std::exception &e) {
        return std::string("unexpected exception: ") + e.what();
    }
    if (!live_futures_return_to(before))
        return std::to_string(futures_live_count() - before) +
               " futures still alive after the test";
    if (!check::counted_gone())
        return std::to_string(counted::alive()) +
               " counted objects still alive after the test";
    if (unobserved.load() != unobserved_before)
        return "failures nobody observed (reported above)";
    return {};
}

} // namespace

int main(int argc, char **argv)
{
    futures_set_unobserved_handler(count_unobserved, nullptr);
    int passed = 0, failed = 0;
    for (const check::test &t : check::registry()) {
        if (!selected(t.name, argc, argv))
            continue;
        std::string why = run(t);
        if (why.empty()) {
            std::printf("ok   %s\n", t.name);
            passed++;
        } else {
            std::printf("FAIL %s: %s\n", t.name, why.c_str());
            failed++;
        }
        std::fflush(stdout);
    }
    // The library's own threads end, so a leak checker sees only leaks.
    if (futures_shutdown(UINT64_C(10000000000)) != 0)
        failed++;
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
