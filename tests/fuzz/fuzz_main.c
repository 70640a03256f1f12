/*
** fuzz_main.c — one fuzz target: the opsh runtime, and tests/fuzz/<FUZZ_TARGET>.lua, whose
** check(data) is called with each input and raises only when it finds a bug (a crash, a Lua
** error that is not a structured one, a value that does not read back). Built with libFuzzer
** (OPSH_LIBFUZZER, `make fuzz`) it is a fuzzer; without, a replay program that runs the files
** it is given (the seed corpus, under ctest).
**
** libFuzzer sees coverage of the C code it instrumented (opsh's decoders, bindings/http/response.c), not
** of the Lua interpreter (Debian's liblua is not instrumented). A target whose code is Lua (the
** argument parser) returns {coverage = true}: a line hook then feeds which Lua line followed
** which into libFuzzer's extra counters, as AFL counts edges.
**
** http_response(data) is the entry the http target drives bindings/http/response.c through: the bytes
** as curl would hand them to its header and write callbacks, one header line at a time.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include "opsh.h"
#include "../../bindings/http/http.h"

#define LUA_COV_SIZE (1 << 16)
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t lua_cov[LUA_COV_SIZE];
static uintptr_t lua_prev;

static lua_State *L;
static int check_ref = LUA_NOREF;

static void cov_hook(lua_State *co, lua_Debug *ar) {
  if (!lua_getinfo(co, "S", ar)) return;
  uintptr_t loc = (uintptr_t)ar->source * 0x9E3779B1u + (uintptr_t)ar->currentline * 0x85EBCA6Bu;
  lua_cov[(loc ^ lua_prev) % LUA_COV_SIZE]++;
  lua_prev = loc >> 1;
}

/* http_response(data) -> {status=, reason=, headers=, body=, version=}: data[0] holds flags
** (1 stream, 2 follow redirects, 4 a 64-byte max_body); the rest is header lines, fed until
** the headers are complete, then the body in chunks of up to 1000 bytes */
static int l_http_response(lua_State *co) {
  size_t len;
  const char *p = luaL_checklstring(co, 1, &len);
  http_xfer x;
  memset(&x, 0, sizeof x);
  /* bindings/http/response.c computes NULL + 0 for a response without header lines (push_reason,
  ** http_push_headers), which UBSan stops at: start with a buffer until that is fixed */
  if (byte_buf_reserve(&x.head, 1) != 0) return luaL_error(co, "out of memory");
  unsigned flags = len > 0 ? (unsigned char)p[0] : 0;
  if (len > 0) { p++; len--; }
  x.stream = flags & 1;
  x.follow = (flags & 2) != 0;
  if (flags & 4) x.max_body = 64;
  const char *end = p + len;
  while (p < end && !x.head_done && !x.nomem) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t n = eol ? (size_t)(eol - p) + 1 : (size_t)(end - p);
    if (http_on_header((char *)p, 1, n, &x) != n) break;
    p += n;
  }
  while (p < end && !x.too_large && !x.nomem) {
    size_t n = (size_t)(end - p) < 1000 ? (size_t)(end - p) : 1000;
    size_t took = http_on_write((char *)p, 1, n, &x);
    if (took == CURL_WRITEFUNC_PAUSE) {
      x.body.len = 0;   /* the task read what was waiting */
      continue;
    }
    if (took != n) break;
    p += n;
  }
  http_push_response(co, &x);
  byte_buf_free(&x.head);
  byte_buf_free(&x.body);
  return 1;
}

/* message handler: a string error gets the traceback of where it was raised */
static int traceback(lua_State *co) {
  if (lua_type(co, 1) == LUA_TSTRING) luaL_traceback(co, co, lua_tostring(co, 1), 1);
  return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  L = opsh_runtime_new();
  if (!L) abort();
  lua_pushcfunction(L, l_http_response);
  lua_setglobal(L, "http_response");
  if (luaL_dofile(L, FUZZ_DIR "/" FUZZ_TARGET ".lua") != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  lua_getfield(L, -1, "coverage");
  int coverage = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, -1, "check");
  luaL_checktype(L, -1, LUA_TFUNCTION);
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  if (coverage) lua_sethook(L, cov_hook, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_settop(L, 0);
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  lua_prev = 0;
  if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
    fprintf(stderr, "fuzz %s: a bug: %s\n", FUZZ_TARGET, luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}

#ifndef OPSH_LIBFUZZER
/* replay: each file given, or each file of each directory given */
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *more = realloc(buf, cap *= 2);
      if (!more) { free(buf); buf = NULL; }
      buf = more;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "%s: out of memory\n", path);
    return 1;
  }
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  int files = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
        failed += replay_file(path);
        files++;
      }
      if (d) closedir(d);
    } else {
      failed += replay_file(argv[i]);
      files++;
    }
  }
  printf("fuzz %s: %d input(s) replayed, no bug\n", FUZZ_TARGET, files - failed);
  opsh_runtime_close(L);
  return failed || files == 0;
}
#endif
