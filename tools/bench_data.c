/*
 * Runs cored_bench_loader (src/data/bench.c) from the command line until `cored bench
 * --data` exists: bench_data ROOT TASK [PACK|-] [THREADS] [BATCH] [SIZE] [SECONDS].
 * Prints images per second. Built and driven by tools/bench_data.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_data ROOT TASK [PACK|-] [THREADS] [BATCH] [SIZE] [SECONDS]\n");
        return 2;
    }
    const char *pack = argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL;
    int threads = argc > 4 ? atoi(argv[4]) : 2, batch = argc > 5 ? atoi(argv[5]) : 32;
    int size = argc > 6 ? atoi(argv[6]) : 128;
    double seconds = argc > 7 ? atof(argv[7]) : 3.0, ips = 0;
    cored_error err = {0};
    if (cored_bench_loader(argv[1], argv[2], pack, threads, batch, size, seconds, &ips, &err)) {
        fprintf(stderr, "bench_data: %s\n", err.msg);
        return 1;
    }
    printf("%.1f\n", ips);
    return 0;
}
