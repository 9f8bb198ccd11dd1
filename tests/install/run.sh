#!/usr/bin/env bash
# Builds programs against installed copies of libfutures the ways README.md
# shows, and runs each without LD_LIBRARY_PATH: the pkg-config recipe with
# its rpath flag, a static link through pkg-config, and the CMake project
# beside this file (futures::futures, futures::futures_static) against two
# installs; each in C (app.c) and in C++ over futures.hpp (app.cpp). The
# installs are the ones make install-test has made in DIR:
#   DIR/prefix   make install PREFIX=DIR/prefix
#   DIR/moved    make install DESTDIR=... PREFIX=/opt/futures, copied here:
#                the CMake package must find the library from where it lies
# Each program must print app.c's sum and load libfutures.so.0 from the
# install it was built against (ldd says), or not at all when linked
# statically. The last line counts them: "install-test: N passed, M failed".
#
# Usage: CC=cc CXX=c++ tests/install/run.sh DIR
set -u
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
cxx=${CXX:-c++}
unset LD_LIBRARY_PATH
passed=0
failed=0

fail() {
    echo "== $1: FAILED: $2"
    failed=$((failed + 1))
}

# check NAME EXE LIBDIR: runs EXE, which must print the sum and take
# libfutures.so.0 from LIBDIR (LIBDIR "static": from nowhere).
check() {
    local name=$1 exe=$2 want=$3 out rc got
    if [ ! -x "$exe" ]; then
        fail "$name" "not built"
        return
    fi
    out=$("$exe" 2>&1)
    rc=$?
    got=$(ldd "$exe" | awk '$1 == "libfutures.so.0" { print $3 }')
    if [ "$want" = static ]; then want=; else want=$want/libfutures.so.0; fi
    if [ $rc -ne 0 ]; then
        fail "$name" "exit status $rc: $out"
    elif [ "$out" != "installed libfutures: 0+1+4+9 = 14" ]; then
        fail "$name" "printed: $out"
    elif [ "$got" != "$want" ]; then
        fail "$name" "libfutures.so.0 from '${got}', not '${want}'"
    else
        echo "== $name: ok${got:+, libfutures.so.0 from $got}"
        passed=$((passed + 1))
    fi
}

# The README's commands, with PKG_CONFIG_PATH set to the install; what
# pkg-config prints is meant to be split into words, as there.
export PKG_CONFIG_PATH=$dir/prefix/lib/pkgconfig
# shellcheck disable=SC2046
$cc "$here/app.c" $(pkg-config --cflags --libs futures) \
    -Wl,-rpath,$(pkg-config --variable=libdir futures) -o "$dir/app"
check "pkg-config, rpath" "$dir/app" "$dir/prefix/lib"
# shellcheck disable=SC2046
$cc "$here/app.c" $(pkg-config --cflags futures) \
    "$(pkg-config --variable=libdir futures)/libfutures.a" -pthread \
    -o "$dir/app-static"
check "pkg-config, static" "$dir/app-static" static
# shellcheck disable=SC2046
$cxx -std=c++17 "$here/app.cpp" $(pkg-config --cflags --libs futures) \
    -Wl,-rpath,$(pkg-config --variable=libdir futures) -o "$dir/app-cxx"
check "pkg-config, rpath, C++" "$dir/app-cxx" "$dir/prefix/lib"
# shellcheck disable=SC2046
$cxx -std=c++17 "$here/app.cpp" $(pkg-config --cflags futures) \
    "$(pkg-config --variable=libdir futures)/libfutures.a" -pthread \
    -o "$dir/app-cxx-static"
check "pkg-config, static, C++" "$dir/app-cxx-static" static

# check_mpi NAME EXE LIBDIR: runs EXE on two ranks; rank 0 must print the
# sum, and EXE take libfutures-mpi.so.0 from LIBDIR.
check_mpi() {
    local name=$1 exe=$2 want=$3/libfutures-mpi.so.0 out rc got
    if [ ! -x "$exe" ]; then
        fail "$name" "not built"
        return
    fi
    # shellcheck disable=SC2086
    out=$($MPIRUN -np 2 "$exe" 2>&1)
    rc=$?
    got=$(ldd "$exe" | awk '$1 == "libfutures-mpi.so.0" { print $3 }')
    if [ $rc -ne 0 ]; then
        fail "$name" "exit status $rc: $out"
    elif [ "$out" != "installed libfutures-mpi: 0+1+4+9 = 14" ]; then
        fail "$name" "printed: $out"
    elif [ "$got" != "$want" ]; then
        fail "$name" "libfutures-mpi.so.0 from '${got}', not '${want}'"
    else
        echo "== $name: ok, libfutures-mpi.so.0 from $got"
        passed=$((passed + 1))
    fi
}

# libfutures-mpi, installed where mpicc was found: built with mpicc and
# pkg-config futures-mpi, run under mpirun (MPIRUN, from the Makefile).
if [ -n "${MPICC:-}" ]; then
    # shellcheck disable=SC2046
    $MPICC "$here/mpi_app.c" $(pkg-config --cflags --libs futures-mpi) \
        -Wl,-rpath,$(pkg-config --variable=libdir futures-mpi) -o "$dir/mpi_app"
    check_mpi "pkg-config futures-mpi, mpicc" "$dir/mpi_app" "$dir/prefix/lib"
fi

# cmake_app NAME PREFIX: configures and builds the CMake project against
# PREFIX, which must be where find_package() found the package, and runs
# both programs. CMake writes the imported library's directory into the
# programs' rpath itself.
cmake_app() {
    local name=$1 prefix=$2 build=$dir/cmake-$1
    local log=$build.log found
    if cmake -S "$here" -B "$build" -DCMAKE_PREFIX_PATH="$prefix" \
        >"$log" 2>&1; then
        found=$(sed -n 's/^futures_DIR:PATH=//p' "$build/CMakeCache.txt")
        if [ "$found" != "$prefix/lib/cmake/futures" ]; then
            echo "cmake found futures in '$found', not in $prefix" >>"$log"
        else
            cmake --build "$build" >>"$log" 2>&1
        fi
    fi
    if [ ! -x "$build/app" ] || [ ! -x "$build/app_static" ] ||
        [ ! -x "$build/app_cxx" ] || [ ! -x "$build/app_cxx_static" ]; then
        cat "$log"
    fi
    check "cmake ($name), futures::futures" "$build/app" "$prefix/lib"
    check "cmake ($name), futures::futures_static" "$build/app_static" static
    check "cmake ($name), futures::futures, C++" "$build/app_cxx" "$prefix/lib"
    check "cmake ($name), futures::futures_static, C++" \
        "$build/app_cxx_static" static
    if [ -n "${MPICC:-}" ]; then
        check_mpi "cmake ($name), futures::mpi" "$build/mpi_app" "$prefix/lib"
    fi
}
cmake_app prefix "$dir/prefix"
cmake_app moved "$dir/moved"

echo "install-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
