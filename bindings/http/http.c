/*
** http.c — opsh._http: one HTTP request per transfer on libcurl's multi interface, the
** calling task suspended until curl has something for it. The policy (retries, deadlines,
** error messages with redacted URLs, JSON, case-insensitive headers) is lua/opsh/http.lua.
**
**   request(spec)          -> {status=, reason=, headers=, body=, version=} | nil, err
**   open(spec [, buffered]) -> transfer whose body is read in chunks (buffered: kept whole):
**     t:write(chunk | nil) -> true | false once the transfer is over   (spec.body_source)
**     t:head()             -> status, headers | nil, err      (waits for the response headers)
**     t:read()             -> chunk | nil at the end of the body
**     t:finish()           -> {status=, ...} | nil, err       (waits for the end)
**     t:close()
**   wipe(secret)           overwrite a secret's bytes (a request body built for one request)
**   concat_secret(a, b)    -> opsh.secret of a .. b (strings or secrets)
**   configure{max_host_connections=, max_total_connections=, max_idle_connections=}
**   stats()                -> {running=, pooled=, sockets=}
**   version()              -> libcurl version, has HTTP/2
*/
#include <stdlib.h>
#include <string.h>
#include "http.h"

typedef struct xfer_box { http_xfer *x; } xfer_box;

/* ---- the transfer handle ---- */

static void xfer_close(http_xfer *x) {
  if (x->state == XF_CLOSED) return;
  http_xfer_release(x);
  x->waiter = NULL;
  x->state = XF_CLOSED;
  if (x->nsfields > 0 && x->body.data) explicit_bzero(x->body.data, x->body.cap);
  byte_buf_free(&x->body);
  byte_buf_free(&x->head);
  byte_buf_free(&x->feed_buf);
  http_secret_free(x);
  free(x->upload_path);
  x->upload_path = NULL;
}

http_xfer *http_xfer_check(lua_State *L, int idx) {
  xfer_box *b = luaL_checkudata(L, idx, HTTP_XFER_META);
  if (!b->x || b->x->state == XF_CLOSED) opsh_error(L, "usage", "http transfer is closed");
  return b->x;
}

static int xfer_gc(lua_State *L) {
  xfer_box *b = luaL_checkudata(L, 1, HTTP_XFER_META);
  if (b->x) {
    xfer_close(b->x);
    /* kept by a transfer the state's teardown closed first */
    free(b->x->upload_path);
    byte_buf_free(&b->x->body);
    byte_buf_free(&b->x->head);
    byte_buf_free(&b->x->feed_buf);
    http_secret_free(b->x);
    free(b->x);
    b->x = NULL;
  }
  return 0;
}

static int xfer_close_m(lua_State *L) {
  xfer_box *b = luaL_checkudata(L, 1, HTTP_XFER_META);
  if (b->x) xfer_close(b->x);
  return 0;
}

static void xfer_cancel(void *ud) {
  http_xfer *x = ud;
  x->waiter = NULL;
  xfer_close(x);
}

/* [-0, +1, m] a new transfer userdata, created closed; uservalue 1 (a table made when first
** needed) anchors borrowed values */
static http_xfer *xfer_new(lua_State *L) {
  xfer_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->x = NULL;
  luaL_setmetatable(L, HTTP_XFER_META);
  http_xfer *x = calloc(1, sizeof *x);
  if (!x) opsh_error(L, "memory", "out of memory");
  x->state = XF_CLOSED;
  b->x = x;
  return x;
}

/* [-0, +1, v] transfer for the spec at idx 1, started */
static http_xfer *xfer_start(lua_State *L, int stream) {
  luaL_checktype(L, 1, LUA_TTABLE);
  opsh_task_check(L, "opsh.http request");
  http_global_init(L);
  http_xfer *x = xfer_new(L);
  int ud = lua_gettop(L);
  x->state = XF_NEW;
  x->stream = stream;
  x->easy = http_easy_get();
  if (!x->easy) opsh_error(L, "protocol", "libcurl could not create a handle");
  http_setup(L, 1, ud, x);
  if (x->state == XF_NEW) {   /* not a body_file being opened (which starts when it is) */
    CURLMcode rc = http_xfer_start(x);
    if (rc != CURLM_OK) opsh_error(L, "protocol", "libcurl: %s", curl_multi_strerror(rc));
  }
  opsh_task_hold(L, ud);
  return x;
}

int http_xfer_wait(lua_State *L, http_xfer *x, int what, int idx, lua_KFunction k) {
  opsh_task *t = opsh_task_check(L, "opsh.http");
  if (x->waiter) return opsh_error(L, "usage", "http transfer is busy in another task");
  x->waiter = t;
  x->waiting_for = what;
  return opsh_yield(L, xfer_cancel, x, idx, k);
}

/* [-0, +1|2, m] response, or nil + error */
static int push_outcome(lua_State *L, http_xfer *x) {
  if (http_xfer_failed(x)) {
    lua_pushnil(L);
    http_push_error(L, x);
    return 2;
  }
  http_push_response(L, x);
  return 1;
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
  http_xfer *x = http_xfer_check(L, (int)ctx);
  if (http_xfer_pending(x)) return http_xfer_wait(L, x, WAIT_DONE, (int)ctx, request_k);
  int n = push_outcome(L, x);
  xfer_close(x);
  return n;
}

static int http_request(lua_State *L) {
  http_xfer *x = xfer_start(L, 0);
  return http_xfer_wait(L, x, WAIT_DONE, lua_gettop(L), request_k);
}

static int http_open(lua_State *L) {
  int buffered = lua_toboolean(L, 2);
  lua_settop(L, 1);
  xfer_start(L, !buffered);
  return 1;
}

static int head_k(lua_State *L, int status, lua_KContext ctx) {
  http_xfer *x = http_xfer_check(L, 1);
  if (http_xfer_pending(x) && !x->head_done) return http_xfer_wait(L, x, WAIT_HEAD, 1, head_k);
  if (!http_xfer_pending(x) && (http_xfer_failed(x) || !x->head_done)) {
    if (!http_xfer_failed(x)) x->head_done = 1;   /* a response without a body */
    else {
      lua_pushnil(L);
      http_push_error(L, x);
      return 2;
    }
  }
  lua_pushinteger(L, x->status);
  http_push_headers(L, x);
  return 2;
}

static int xfer_head(lua_State *L) {
  http_xfer_check(L, 1);
  lua_settop(L, 1);
  return head_k(L, LUA_OK, 0);
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  http_xfer *x = http_xfer_check(L, 1);
  if (x->body.len > 0) {
    lua_pushlstring(L, x->body.data, x->body.len);
    x->body.len = 0;
    if (x->paused && x->state == XF_RUNNING) {
      x->paused = 0;
      http_xfer_unpause(x);   /* may deliver the held chunk at once */
    }
    return 1;
  }
  if (http_xfer_pending(x)) return http_xfer_wait(L, x, WAIT_DATA, 1, read_k);
  return 0;
}

static int xfer_read(lua_State *L) {
  http_xfer_check(L, 1);
  lua_settop(L, 1);
  return read_k(L, LUA_OK, 0);
}

static int finish_k(lua_State *L, int status, lua_KContext ctx) {
  http_xfer *x = http_xfer_check(L, 1);
  if (http_xfer_pending(x)) {
    if (x->paused && x->state == XF_RUNNING) {
      /* the caller gave up reading: drop what is buffered and let the rest flow */
      x->body.len = 0;
      x->paused = 0;
      http_xfer_unpause(x);
    }
    if (http_xfer_pending(x)) return http_xfer_wait(L, x, WAIT_DONE, 1, finish_k);
  }
  int n = push_outcome(L, x);
  xfer_close(x);
  return n;
}

static int xfer_finish(lua_State *L) {
  http_xfer_check(L, 1);
  lua_settop(L, 1);
  return finish_k(L, LUA_OK, 0);
}

static int xfer_tostring(lua_State *L) {
  xfer_box *b = luaL_checkudata(L, 1, HTTP_XFER_META);
  static const char *const states[] = {"new", "opening", "running", "done", "closed"};
  lua_pushfstring(L, "opsh.http.transfer (%s)", b->x ? states[b->x->state] : "closed");
  return 1;
}

static const luaL_Reg transfer_methods[] = {
  {"write", http_feed_write},
  {"head", xfer_head},
  {"read", xfer_read},
  {"finish", xfer_finish},
  {"close", xfer_close_m},
  {NULL, NULL}
};

static const luaL_Reg transfer_meta[] = {
  {"__gc", xfer_gc},
  {"__close", xfer_close_m},
  {"__tostring", xfer_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* ---- module functions ---- */

static int http_configure_l(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  http_global_init(L);
  lua_getfield(L, 1, "max_host_connections");
  long host = lua_isnil(L, -1) ? -1 : (long)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "max_total_connections");
  long total = lua_isnil(L, -1) ? -1 : (long)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "max_idle_connections");
  long cached = lua_isnil(L, -1) ? -1 : (long)luaL_checkinteger(L, -1);
  http_configure(host, total, cached);
  return 0;
}

static int http_stats(lua_State *L) {
  http_push_stats(L);
  return 1;
}

static int http_wipe(lua_State *L) {
  if (!opsh_is_secret(L, 1)) luaL_typeerror(L, 1, "opsh.secret");
  size_t len;
  const char *s = opsh_secret_check(L, 1, &len);
  explicit_bzero((char *)s, len);   /* the secret's own bytes: a userdata, writable */
  return 0;
}

/* concat_secret(a, b) -> opsh.secret holding a .. b (each a string or a secret): "Bearer " .. token */
static int http_concat_secret(lua_State *L) {
  size_t la, lb;
  const char *a = opsh_secret_check(L, 1, &la), *b = opsh_secret_check(L, 2, &lb);
  char *buf = malloc(la + lb + 1);
  if (!buf) return opsh_error(L, "memory", "out of memory");
  memcpy(buf, a, la);
  memcpy(buf + la, b, lb);
  opsh_secret_push(L, buf, la + lb);
  explicit_bzero(buf, la + lb);
  free(buf);
  return 1;
}

static int http_version(lua_State *L) {
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  return 2;
}

static const luaL_Reg http_funcs[] = {
  {"request", http_request},
  {"open", http_open},
  {"configure", http_configure_l},
  {"stats", http_stats},
  {"version", http_version},
  {"wipe", http_wipe},
  {"concat_secret", http_concat_secret},
  {NULL, NULL}
};

int luaopen_opsh_http(lua_State *L) {
  opsh_curl_load(L);
  if (luaL_newmetatable(L, HTTP_XFER_META)) {
    luaL_setfuncs(L, transfer_meta, 0);
    luaL_newlib(L, transfer_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, http_funcs);
  return 1;
}
