// The C++ layer built against an installed libfutures, through pkg-config
// and through CMake (make install-test, tests/install/run.sh): futures.hpp
// must be installed beside futures.h. It prints the sum that run.sh checks,
// as app.c does.
#include <futures.hpp>

#include <cstdio>
#include <vector>

int main()
{
    try {
        futures::pool pool(2);
        std::vector<futures::future<unsigned>> fs;
        for (unsigned i = 0; i < 4; i++)
            fs.push_back(pool.submit([i] { return i * i; }));
        unsigned sum = 0;
        for (unsigned v : futures::when_all(fs).get())
            sum += v;
        std::printf("installed libfutures: 0+1+4+9 = %u\n", sum);
        return sum != 14;
    } catch (const futures::error &e) {
        std::fprintf(stderr, "app.cpp: %s\n", e.what());
        return 1;
    }
}
