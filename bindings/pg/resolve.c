/*
** resolve.c — opsh._pg.resolve: a host name to its addresses with uv_getaddrinfo, on libuv's
** thread pool. libpq resolves a `host` it is given without `hostaddr` with a blocking
** getaddrinfo inside PQconnectPoll, that is on the loop thread: every task would stall for as
** long as DNS takes, and no timer (connect_timeout included) could fire meanwhile. The Lua layer
** resolves each name here and gives libpq the addresses as `hostaddr`, keeping `host` for the
** certificate check and SNI.
*/
#include <stdlib.h>
#include <string.h>
#include "pg.h"

typedef struct resolve_req {
  uv_getaddrinfo_t req;
  uv_timer_t *timer;   /* the deadline; NULL once closed */
  opsh_task *task;     /* NULL once woken or cancelled */
  int pending;         /* the getaddrinfo callback has not run yet */
} resolve_req;

/* the request is freed once its getaddrinfo callback ran and its timer is closed */
static void release(resolve_req *r) {
  if (r->timer) {
    uv_timer_stop(r->timer);
    opsh_close_free((uv_handle_t *)r->timer, r->timer);
    r->timer = NULL;
  }
  if (!r->pending) free(r);
}

/* [-0, +1, m] the addresses as strings, in the resolver's order, without duplicates */
static void push_addresses(lua_State *L, const struct addrinfo *res) {
  lua_newtable(L);
  int n = 0;
  for (const struct addrinfo *a = res; a; a = a->ai_next) {
    char buf[64];
    int rc = -1;
    if (a->ai_family == AF_INET) rc = uv_ip4_name((const struct sockaddr_in *)a->ai_addr, buf, sizeof buf);
    else if (a->ai_family == AF_INET6) rc = uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, buf, sizeof buf);
    if (rc != 0) continue;
    int dup = 0;
    for (int i = 1; i <= n && !dup; i++) {
      lua_rawgeti(L, -1, i);
      dup = strcmp(lua_tostring(L, -1), buf) == 0;
      lua_pop(L, 1);
    }
    if (dup) continue;
    lua_pushstring(L, buf);
    lua_rawseti(L, -2, ++n);
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_req *r = req->data;
  r->pending = 0;
  if (r->task) {
    lua_State *co = opsh_task_thread(r->task);
    if (status == 0) {
      push_addresses(co, res);
      if (lua_rawlen(co, -1) == 0) {
        lua_pop(co, 1);
        lua_pushnil(co);
        lua_pushliteral(co, "no IPv4 or IPv6 address");
      } else {
        lua_pushnil(co);
      }
    } else {
      lua_pushnil(co);
      lua_pushstring(co, uv_strerror(status));
    }
    opsh_task_wake(r->task, 2);
    r->task = NULL;
  }
  uv_freeaddrinfo(res);
  release(r);
}

static void on_deadline(uv_timer_t *t) {
  resolve_req *r = t->data;
  if (r->task) {
    lua_State *co = opsh_task_thread(r->task);
    lua_pushnil(co);
    lua_pushliteral(co, "timeout");
    opsh_task_wake(r->task, 2);
    r->task = NULL;
  }
  uv_cancel((uv_req_t *)&r->req);   /* if it has not started; else its callback frees r */
  release(r);
}

static void resolve_cancel(void *ud) {
  resolve_req *r = ud;
  r->task = NULL;
  uv_cancel((uv_req_t *)&r->req);
  release(r);
}

static int resolve_k(lua_State *L, int status, lua_KContext ctx) {
  /* pushed: addresses, nil | nil, message */
  if (!lua_isnil(L, -2)) {
    lua_pop(L, 1);
    return 1;
  }
  int timed_out = strcmp(lua_tostring(L, -1), "timeout") == 0;
  lua_pushboolean(L, timed_out);
  return 3;
}

/* resolve(host, timeout_seconds (0: none)) -> {address, ...} | nil, message, timed_out */
static int pg_resolve(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  uint64_t ms = opsh_duration_ms(L, luaL_checknumber(L, 2), "pg host name lookup");   /* 0: none */
  opsh_task *t = opsh_task_check(L, "pg.connect");
  lua_settop(L, 2);
  resolve_req *r = calloc(1, sizeof *r);
  if (!r) return opsh_error(L, "pg_connect", "out of memory resolving \"%s\"", host);
  r->timer = malloc(sizeof *r->timer);
  if (!r->timer) {
    free(r);
    return opsh_error(L, "pg_connect", "out of memory resolving \"%s\"", host);
  }
  uv_loop_t *loop = opsh_loop(L);
  uv_timer_init(loop, r->timer);
  r->timer->data = r;
  r->req.data = r;
  r->task = t;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;       /* as libpq asks */
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(loop, &r->req, on_resolved, host, NULL, &hints);
  if (rc != 0) {
    r->task = NULL;
    release(r);
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(rc));
    lua_pushboolean(L, 0);
    return 3;
  }
  r->pending = 1;
  if (ms > 0 && ms != OPSH_FOREVER) uv_timer_start(r->timer, on_deadline, ms, 0);
  return opsh_yield(L, resolve_cancel, r, 0, resolve_k);
}

static const luaL_Reg resolve_funcs[] = {
  {"resolve", pg_resolve},
  {NULL, NULL}
};

void pg_resolve_register(lua_State *L) { luaL_setfuncs(L, resolve_funcs, 0); }
