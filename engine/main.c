/*
** main.c — the opsh binary: make the runtime, hand argv to the Lua CLI (lua/opsh/cli.lua)
** as the first task, exit with the code it returns. Output that could not be written (a full
** disk, a closed pipe) is an error on every way out, os.exit() included.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime.h"

static int exit_code;   /* what main returns; os.exit() from Lua exits with the status it is given */

/* atexit: stdout written and flushed, or one line on stderr and exit status 1 */
static void check_stdout(void) {
  int failed = fflush(stdout) != 0;
  int err = errno;
  if (!failed && !ferror(stdout)) return;
  if (failed) fprintf(stderr, "opsh: cannot write output: %s\n", strerror(err));
  else fprintf(stderr, "opsh: cannot write output: a write to standard output failed\n");
  fflush(stderr);
  _exit(exit_code != 0 ? exit_code : 1);
}

int main(int argc, char **argv) {
  atexit(check_stdout);
  lua_State *L = opsh_runtime_new();
  if (!L) {
    fprintf(stderr, "opsh: cannot create the Lua state: out of memory\n");
    return 1;
  }
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  int code;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "opsh.cli");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "opsh: internal error loading the CLI: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "main");
  lua_getglobal(L, "arg");
  int status = opsh_runtime_run(L, 1);
  if (status == OPSH_TASK_DONE) {
    code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  } else if (opsh_error_is(L, -2, "interrupted")) {
    fprintf(stderr, "opsh: %s\n", opsh_error_describe(L, -2));   /* interrupted, terminated (SIGTERM)... */
    code = 130;
  } else {
    /* the CLI reports every expected failure itself: this is a bug in opsh */
    fprintf(stderr, "opsh: internal error: %s\n", opsh_error_describe(L, -2));
    code = 1;
  }
  int sig = opsh_runtime_signal();   /* SIGTERM or SIGHUP cancelled the run: it ends as killed by it */
  if (sig) code = 128 + sig;
  opsh_runtime_close(L);   /* cleanups of what still runs finish first */
  exit_code = code;
  return code;
}
