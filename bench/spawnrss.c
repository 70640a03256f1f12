/* spawnrss.c — run commands RUNS times each, alternately (one run of each in turn, so that a
** change in the machine's load falls on all of them alike), from a tiny process; print each one's
** median wall (s) and peak RSS (KiB). A launcher this small keeps its own pages out of the child's
** high-water mark (a fork of python would add ~10 MB to every figure).
** usage: spawnrss RUNS LABEL command... [--- LABEL command...]... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>

struct cmd { const char *label; char **argv; double *walls; long peak; };

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int run(struct cmd *c, int i) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1); dup2(null, 2);
    execvp(c->argv[0], c->argv);
    _exit(127);
  }
  int status;
  struct rusage ru;
  wait4(pid, &status, 0, &ru);
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s: failed (status %d)\n", c->label, status);
    return -1;
  }
  c->walls[i] = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  if (ru.ru_maxrss > c->peak) c->peak = ru.ru_maxrss;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: spawnrss RUNS LABEL command... [--- LABEL command...]...\n"); return 2; }
  int runs = atoi(argv[1]);
  struct cmd cmds[16];
  int n = 0;
  for (int i = 2; i < argc && n < 16;) {
    cmds[n].label = argv[i];
    cmds[n].argv = argv + i + 1;
    cmds[n].peak = 0;
    cmds[n].walls = calloc((size_t)runs, sizeof(double));
    if (!cmds[n].walls) return 1;
    int j = i + 1;
    while (j < argc && strcmp(argv[j], "---") != 0) j++;
    argv[j < argc ? j : argc] = NULL;   /* ends this command's argv (argv[argc] is NULL already) */
    n++;
    i = j + 1;
  }
  for (int i = 0; i < runs; i++)
    for (int k = 0; k < n; k++)
      if (run(&cmds[k], i) != 0) return 1;
  for (int k = 0; k < n; k++) {
    qsort(cmds[k].walls, (size_t)runs, sizeof(double), cmp);
    printf("%s %.4f %ld\n", cmds[k].label, cmds[k].walls[runs / 2], cmds[k].peak);
  }
  return 0;
}
