// gather_cxx.cpp - the libfutures demo (gather.c) in C++, over futures.hpp:
// run blocking jobs one by one, then all at once on a pool, and compare.
//
// Each job stands in for a request: it blocks for a while, then returns a
// result. Run one after another they take the sum of their delays;
// submitted to a pool with a thread per job and joined with when_all()
// they take about the longest delay. Here the jobs are lambdas capturing
// their job, their results typed values, and a failure an exception.
//
//   usage: gather_cxx [--scale F]   (F multiplies every delay; default 1.0)
#include <futures.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct job {
    std::string name;
    double delay; // seconds, before scaling
    int answer;
};

const std::vector<job> jobs = {
    {"weather", 1.0, 21},
    {"news", 0.5, 7},
    {"stocks", 0.75, 99},
    {"mail", 0.25, 3},
};
double scale = 1.0;

double now()
{
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The blocking job: any callable the pool can run.
int fetch(const job &j)
{
    std::this_thread::sleep_for(std::chrono::duration<double>(j.delay * scale));
    return j.answer;
}

double run_one_by_one()
{
    double start = now();
    for (const job &j : jobs)
        std::printf("  %-8s -> %d\n", j.name.c_str(), fetch(j));
    return now() - start;
}

double run_together(const futures::pool &pool)
{
    double start = now();
    std::vector<futures::future<int>> fs;
    for (const job &j : jobs)
        fs.push_back(pool.submit([&j] { return fetch(j); }));
    // asyncio.gather(*jobs): the answers in the jobs' order.
    const std::vector<int> answers = futures::when_all(fs).get();
    for (std::size_t i = 0; i < jobs.size(); i++)
        std::printf("  %-8s -> %d\n", jobs[i].name.c_str(), answers[i]);
    return now() - start;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc == 3 && std::strcmp(argv[1], "--scale") == 0)
        scale = std::atof(argv[2]);
    if (scale <= 0 || (argc != 1 && argc != 3)) {
        std::fprintf(stderr, "usage: %s [--scale F]\n", argv[0]);
        return 2;
    }
    try {
        // One thread per job: the jobs block rather than compute, so the
        // pool is sized for them, not for the CPUs.
        futures::pool pool(jobs.size());
        std::printf("one by one:\n");
        double sync = run_one_by_one();
        std::printf("together (pool of %zu, when_all):\n", jobs.size());
        double together = run_together(pool);
        std::printf("one by one: %.2f s, together: %.2f s (%.1fx faster)\n",
                    sync, together, sync / together);
    } catch (const futures::error &e) {
        std::fprintf(stderr, "gather_cxx: %s (error %d)\n", e.what(),
                     e.code().value());
        return 1;
    }
    return 0;
}
