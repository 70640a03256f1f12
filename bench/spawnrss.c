/* spawnrss.c — run a command RUNS times from a tiny process; print median wall (s) and peak RSS (KiB).
** A launcher this small keeps its own pages out of the child's high-water mark (a fork of python
** would add ~10 MB to every figure). usage: spawnrss RUNS LABEL command... */
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: spawnrss RUNS LABEL command...\n"); return 2; }
  int runs = atoi(argv[1]);
  double *walls = calloc((size_t)runs, sizeof *walls);
  long peak = 0;
  for (int i = 0; i < runs; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_RDWR);
      dup2(null, 1); dup2(null, 2);
      execvp(argv[3], argv + 3);
      _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "%s: failed (status %d)\n", argv[2], status);
      return 1;
    }
    walls[i] = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    if (ru.ru_maxrss > peak) peak = ru.ru_maxrss;
  }
  qsort(walls, (size_t)runs, sizeof *walls, cmp);
  printf("%s %.4f %ld\n", argv[2], walls[runs / 2], peak);
  free(walls);
  return 0;
}
