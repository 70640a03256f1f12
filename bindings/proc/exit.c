/*
** exit.c — no child of opsh._proc outlives opsh unless it was detached. Every running child
** is on a list (pid, grace, when TERM went out) until libuv reports its exit. At process exit the
** loop is gone, so the KILL a closed handle's timer still owed would never be sent: the exit
** handler sends TERM to those not yet told, waits for each until its kill_grace has passed since
** its TERM, sends KILL, and reaps them; then it frees the procs whose handles the loop closed
** without calling back.
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include "proc.h"

typedef struct child {
  int pid;
  int stage;            /* 0 running, 1 TERM sent, 2 KILL sent, 3 gone */
  uint64_t grace_ms;
  uint64_t term_at;     /* ms, monotonic */
  uint64_t kill_at;
} child;

static child *children;
static size_t nchildren, capchildren;
static pid_t owner;     /* the process whose children these are (not a forked copy) */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static child *find(int pid) {
  for (size_t i = 0; i < nchildren; i++)
    if (children[i].pid == pid) return &children[i];
  return NULL;
}

static void at_exit(void) {
  if (getpid() != owner) return;
  uint64_t now = mono_ms();
  for (size_t i = 0; i < nchildren; i++) {
    child *c = &children[i];
    if (c->stage == 0) {
      kill(c->pid, SIGTERM);
      c->stage = 1;
      c->term_at = now;
    }
  }
  for (;;) {
    int pending = 0;
    now = mono_ms();
    for (size_t i = 0; i < nchildren; i++) {
      child *c = &children[i];
      if (c->stage == 3) continue;
      pid_t r = waitpid(c->pid, NULL, WNOHANG);
      if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->stage = 3;
        continue;
      }
      if (c->stage == 1 && now - c->term_at >= c->grace_ms) {   /* grace_ms may be OPSH_FOREVER */
        kill(c->pid, SIGKILL);
        c->stage = 2;
        c->kill_at = now;
      }
      if (c->stage == 2 && now >= c->kill_at + 2000) {   /* stuck in the kernel: give up on it */
        c->stage = 3;
        continue;
      }
      pending++;
    }
    if (!pending) break;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  nchildren = 0;
  opsh_proc_free_all();
}

void opsh_proc_at_exit_init(void) {
  if (owner) return;
  owner = getpid();
  atexit(at_exit);
}

int opsh_proc_track_reserve(void) {
  if (nchildren < capchildren) return 0;
  size_t cap = capchildren ? capchildren * 2 : 16;
  child *c = realloc(children, cap * sizeof *c);
  if (!c) return -1;
  children = c;
  capchildren = cap;
  return 0;
}

void opsh_proc_track(int pid, uint64_t grace_ms) {
  if (nchildren == capchildren) return;   /* opsh_proc_track_reserve made room beforehand */
  child *c = &children[nchildren++];
  memset(c, 0, sizeof *c);
  c->pid = pid;
  c->grace_ms = grace_ms;
}

void opsh_proc_track_term(int pid, uint64_t grace_ms) {
  child *c = find(pid);
  if (!c || c->stage) return;
  c->stage = 1;
  c->grace_ms = grace_ms;
  c->term_at = mono_ms();
}

void opsh_proc_untrack(int pid) {
  child *c = find(pid);
  if (c) *c = children[--nchildren];
}
