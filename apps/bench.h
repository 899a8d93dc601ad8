/* cmprouter bench: a closed-loop CMP load generator (cmprouter(1) BENCH). */
#ifndef CMPR_APPS_BENCH_H
#define CMPR_APPS_BENCH_H

/* argv[0] is "bench"; returns the exit code (0 measured, 1 nothing
 * succeeded, 2 usage or set-up) */
int cmpr_bench_main(int argc, char **argv);

#endif
