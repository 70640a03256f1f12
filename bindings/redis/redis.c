/*
** redis.c — opsh._redis: connections to Redis on hiredis's async API and its libuv adapter,
** on the opsh loop. This part resolves and connects (plain, or TLS through tls.c),
** notices a server that goes away, and closes. What tasks wait for is req.c; commands
** and pub/sub cmd.c, pipelines batch.c, replies kept for the task reply.c;
** the policy (URLs, AUTH, SELECT, reconnecting, INFO, dry-run) is lua/opsh/redis.lua.
*/
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <hiredis/adapters/libuv.h>
#include "redis.h"
#if RTLS_NATIVE
#include <hiredis/hiredis_ssl.h>
#endif

typedef struct { rconn *c; } conn_ud;

/* ---- connecting ---- */

static void connect_next(rconn *c);

static void connect_failed(rconn *c, const char *kind, const char *why) {
  rreq *r = c->connecting;
  rconn_teardown(c);
  if (!r) return;
  rreq_fail(r, kind, "%s", why);
  rreq_unwait(r);
  rreq_maybe_free(r);
}

static void connect_succeeded(rconn *c) {
  rreq *r = c->connecting;
  c->state = C_READY;
  c->why[0] = '\0';
  if (c->ai) uv_freeaddrinfo(c->ai);
  c->ai = c->ai_next = NULL;
  if (!r) return;
  rreq_done(r);
  rreq_maybe_free(r);
}

/* wake every task still waiting: the connection is gone */
static void wake_all_lost(rconn *c, const char *kind) {
  while (c->head) {
    rreq *r = c->head;
    if (r->kind == REQ_MSG || r->kind == REQ_SUB || r->kind == REQ_CONNECT)
      rreq_fail(r, kind, "%s", c->why);
    else
      rreq_fail(r, kind, "connection lost (%s)", c->why);
    rreq_unwait(r);
    rreq_maybe_free(r);
  }
}

static void conn_release(rconn *c);

/* the adapter's cleanup, called by hiredis whenever a context goes away */
static void on_ac_cleanup(void *privdata) {
  redisLibuvEvents *p = privdata;
  redisAsyncContext *ac = p->context;
  redisLibuvCleanup(privdata);
  rconn *c = ac ? ac->data : NULL;
  if (!c || c->ac != ac) return;
  if (!c->why[0])
    snprintf(c->why, sizeof c->why, "%s", ac->err ? ac->errstr : "connection closed");
  c->ac = NULL;
  c->state = C_DOWN;
#if !RTLS_NATIVE
  rtls_close(c->pump);
  c->pump = NULL;
#endif
  wake_all_lost(c, "connect");
  if (c->closed) conn_release(c);
}

static void on_connected(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  rconn *c = ac->data;
  if (!c || c->ac != ac) return;
  if (status != REDIS_OK) {
    snprintf(c->why, sizeof c->why, "%s", ac->errstr);
    ac->data = NULL;   /* hiredis frees it when we return */
    c->ac = NULL;
#if !RTLS_NATIVE
    rtls_close(c->pump);
    c->pump = NULL;
#endif
    connect_next(c);
    return;
  }
  /* read even while idle, so that a server going away is noticed before the next command */
  ac->ev.addRead(ac->ev.data);
  connect_succeeded(c);
}

#if HIREDIS_MAJOR < 1
/* hiredis 0.14's libuv adapter drops poll errors (libuv reports a refused connect as one, and
** stops the poll), which would leave the connect hanging: hand them on as the events that were
** asked for, so that hiredis finds the socket error itself */
static void on_poll(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  int asked = p->events;
  if (status < 0) p->events = 0;   /* libuv stopped it: the next hook starts it again */
  redisLibuvPoll(h, 0, status < 0 ? asked : events);
}

/* the adapter's hooks restart the poll on every command; these only touch it on a change */
static void set_events(redisLibuvEvents *p, int events) {
  if (events == p->events) return;
  p->events = events;
  if (events) uv_poll_start(&p->handle, events, on_poll);
  else uv_poll_stop(&p->handle);
}

static void add_read(void *pd) { set_events(pd, ((redisLibuvEvents *)pd)->events | UV_READABLE); }
static void del_read(void *pd) { set_events(pd, ((redisLibuvEvents *)pd)->events & ~UV_READABLE); }
static void add_write(void *pd) { set_events(pd, ((redisLibuvEvents *)pd)->events | UV_WRITABLE); }
static void del_write(void *pd) { set_events(pd, ((redisLibuvEvents *)pd)->events & ~UV_WRITABLE); }
#endif

/* 0, or -1 with c->why set */
static int attach(rconn *c, redisAsyncContext *ac) {
  if (!ac) {
    snprintf(c->why, sizeof c->why, "out of memory");
    return -1;
  }
  if (ac->err) {
    snprintf(c->why, sizeof c->why, "%s", ac->errstr);
    redisAsyncFree(ac);
    return -1;
  }
  if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
    snprintf(c->why, sizeof c->why, "cannot watch the socket");
    redisAsyncFree(ac);
    return -1;
  }
#if HIREDIS_MAJOR < 1
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
#endif
  ac->ev.cleanup = on_ac_cleanup;
  ac->data = c;
  c->ac = ac;
  c->state = C_CONNECTING;
  redisAsyncSetConnectCallback(ac, on_connected);
  return 0;
}

static SSL *make_ssl(rconn *c) {
  char err[300];
  SSL_CTX *ctx = rtls_ctx_new(c->ca, c->ca_len, err, sizeof err);
  SSL *ssl = ctx ? rtls_ssl_new(ctx, c->servername, c->verify, err, sizeof err) : NULL;
  if (ctx) SSL_CTX_free(ctx);   /* the session keeps its own reference */
  if (!ssl) snprintf(c->why, sizeof c->why, "%s", err);
  return ssl;
}

static void connect_next(rconn *c) {
  while (c->ai_next) {
    struct addrinfo *a = c->ai_next;
    c->ai_next = a->ai_next;
    if (a->ai_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, c->addr, sizeof c->addr);
    else
      uv_ip4_name((struct sockaddr_in *)a->ai_addr, c->addr, sizeof c->addr);
    if (!c->tls) {
      if (attach(c, redisAsyncConnect(c->addr, c->port)) == 0) return;
      continue;
    }
    SSL *ssl = make_ssl(c);
    if (!ssl) {
      connect_failed(c, "tls", c->why);
      return;
    }
#if RTLS_NATIVE
    if (attach(c, redisAsyncConnect(c->addr, c->port)) != 0) {
      SSL_free(ssl);
      continue;
    }
    if (redisInitiateSSL(&c->ac->c, ssl) != REDIS_OK) {
      snprintf(c->why, sizeof c->why, "%s", c->ac->c.errstr);
      connect_failed(c, "tls", c->why);
      return;
    }
    return;
#else
    c->state = C_TLS;
    c->pump = rtls_start(c->loop, a->ai_addr, ssl, c);
    if (c->pump) return;
    snprintf(c->why, sizeof c->why, "cannot start a TCP connection");
#endif
  }
  connect_failed(c, "connect", c->why[0] ? c->why : "no address to connect to");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  rconn *c = req->data;
  free(req);
  if (!c) {
    if (res) uv_freeaddrinfo(res);
    return;
  }
  c->gai = NULL;
  if (status < 0) {
    char why[300];
    snprintf(why, sizeof why, "cannot resolve %s: %s", c->host, uv_strerror(status));
    connect_failed(c, "connect", why);
    return;
  }
  c->ai = c->ai_next = res;
  connect_next(c);
}

#if !RTLS_NATIVE
/* hiredis on one end of a fresh local stream socket, our fd on the other: hiredis 0.14 can
** only connect by itself, so it connects to a listener in a private directory that lives
** for the duration of this call */
static redisAsyncContext *local_pair(rconn *c, int *fd) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp || strlen(tmp) > 64) tmp = "/tmp";
  char dir[96], path[100];
  snprintf(dir, sizeof dir, "%s/opsh-redis-XXXXXX", tmp);
  redisAsyncContext *ac = NULL;
  *fd = -1;
  if (!mkdtemp(dir)) {
    snprintf(c->why, sizeof c->why, "cannot create a local socket directory in %s", tmp);
    return NULL;
  }
  snprintf(path, sizeof path, "%s/s", dir);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 1) == 0) {
    ac = redisAsyncConnectUnix(path);
    if (ac && !ac->err) {
      *fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      struct ucred cred;
      socklen_t len = sizeof cred;
      if (*fd >= 0 && (getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
                       cred.pid != getpid())) {
        close(*fd);
        *fd = -1;
      }
    }
  }
  if (*fd < 0) snprintf(c->why, sizeof c->why, "cannot set up the local TLS socket");
  if (lfd >= 0) close(lfd);
  unlink(path);
  rmdir(dir);
  if (*fd < 0 && ac) {
    redisAsyncFree(ac);
    ac = NULL;
  }
  return ac;
}

void rconn_tls_up(rconn *c) {
  int fd;
  redisAsyncContext *ac = local_pair(c, &fd);
  if (!ac || attach(c, ac) != 0) {
    if (fd >= 0) close(fd);
    connect_failed(c, "connect", c->why);
    return;
  }
  if (rtls_attach(c->pump, fd) != 0) connect_failed(c, "connect", "cannot pump the TLS session");
}

void rconn_tls_failed(rconn *c, const char *kind, const char *why) {
  rtls_close(c->pump);
  c->pump = NULL;
  if (strcmp(kind, "connect") == 0) {
    snprintf(c->why, sizeof c->why, "%s", why);
    connect_next(c);
    return;
  }
  char msg[400];
  if (strcmp(c->addr, c->host) != 0) snprintf(msg, sizeof msg, "TLS handshake with %s failed: %s", c->addr, why);
  else snprintf(msg, sizeof msg, "TLS handshake failed: %s", why);
  connect_failed(c, kind, msg);
}

void rconn_tls_broken(rconn *c, const char *why) {
  snprintf(c->why, sizeof c->why, "%s", why);
}
#endif

/* ---- lifecycle ---- */

/* stop connecting or drop the connection; the handle stays usable for a new connect */
void rconn_teardown(rconn *c) {
  if (c->gai) {
    c->gai->data = NULL;
    uv_cancel((uv_req_t *)c->gai);
    c->gai = NULL;
  }
  if (c->ai) uv_freeaddrinfo(c->ai);
  c->ai = c->ai_next = NULL;
#if !RTLS_NATIVE
  rtls_close(c->pump);
  c->pump = NULL;
#endif
  if (c->ac) {
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
  }
  c->state = C_DOWN;
}

static void conn_release(rconn *c) {
  rconn_teardown(c);
  rconn_drop_messages(c);
  if (c->ca) {
    OPENSSL_cleanse(c->ca, c->ca_len);
    free(c->ca);
  }
  opsh_close_free((uv_handle_t *)&c->timer, c);   /* c->timer is inside c */
}

/* The Lua handle lets go. Tasks still waiting are woken with an error, unless the handle was
** collected (then nothing can be waiting on it). */
static void conn_shutdown(rconn *c, int collected) {
  c->closed = 1;
  snprintf(c->why, sizeof c->why, "connection closed");
  while (c->head) {
    rreq *r = c->head;
    if (!collected) rreq_fail(r, "closed", "%s", "connection closed");
    rreq_unwait(r);
    rreq_maybe_free(r);
  }
  if (c->ac && c->state == C_READY) {
    redisAsyncFree(c->ac);   /* on_ac_cleanup releases c, now or when hiredis's callback returns */
    return;
  }
  conn_release(c);
}

rconn *rconn_get(lua_State *L, int idx) {
  return ((conn_ud *)luaL_checkudata(L, idx, REDIS_CONN_META))->c;
}

rconn *rconn_check(lua_State *L, int idx) {
  conn_ud *ud = luaL_checkudata(L, idx, REDIS_CONN_META);
  if (!ud->c) opsh_error(L, "usage", "the redis connection is closed");
  return ud->c;
}

/* the handle lets go of its connection (once); from_gc as conn_shutdown takes it */
static int conn_end(lua_State *L, int from_gc) {
  conn_ud *ud = luaL_checkudata(L, 1, REDIS_CONN_META);
  if (ud->c) {
    rconn *c = ud->c;
    ud->c = NULL;
    conn_shutdown(c, from_gc);
  }
  return 0;
}

static int conn_close(lua_State *L) { return conn_end(L, 0); }
static int conn_gc(lua_State *L) { return conn_end(L, 1); }

/* conn:status() -> "connecting"|"ready"|"down"|"closed", why it went down */
static int conn_status(lua_State *L) {
  conn_ud *ud = luaL_checkudata(L, 1, REDIS_CONN_META);
  static const char *const names[] = {"connecting", "connecting", "connecting", "ready", "down"};
  if (!ud->c) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  lua_pushstring(L, names[ud->c->state]);
  if (ud->c->state != C_DOWN) return 1;
  lua_pushstring(L, ud->c->why);
  return 2;
}

static int conn_tostring(lua_State *L) {
  conn_ud *ud = luaL_checkudata(L, 1, REDIS_CONN_META);
  if (!ud->c) lua_pushliteral(L, "redis connection (closed)");
  else lua_pushfstring(L, "redis connection %s:%d%s", ud->c->host, ud->c->port, ud->c->tls ? " (tls)" : "");
  return 1;
}

#define CONNECT "redis.connect"

static int connect_k(lua_State *L, int status, lua_KContext ctx);

/* connect{host=, port=, tls=, ca=, servername=, verify=, timeout=, connect_timeout=} -> conn */
static int redis_connect(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  size_t hlen = 0, calen = 0, snlen = 0;
  const char *host = opsh_opt_string(L, 1, "host", &hlen, CONNECT);
  if (!host) host = "127.0.0.1", hlen = 9;
  luaL_argcheck(L, hlen > 0 && hlen < 256, 1, "host must be 1 to 255 characters");
  lua_getfield(L, 1, "port");
  lua_Integer port = luaL_optinteger(L, -1, 6379);
  lua_pop(L, 1);
  luaL_argcheck(L, port > 0 && port < 65536, 1, "port must be 1 to 65535");
  const char *ca = opsh_opt_string(L, 1, "ca", &calen, CONNECT);
  luaL_argcheck(L, calen < INT_MAX, 1, "ca is too large");
  const char *sn = opsh_opt_string(L, 1, "servername", &snlen, CONNECT);
  luaL_argcheck(L, snlen < 256, 1, "servername is too long");
  lua_getfield(L, 1, "tls");
  int tls = lua_toboolean(L, -1);
  lua_getfield(L, 1, "verify");
  int verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 2);
  uint64_t timeout = opsh_opt_duration(L, 1, "timeout", 0, CONNECT);   /* 0 or math.huge: none */
  uint64_t connect_timeout = opsh_opt_duration(L, 1, "connect_timeout", 10, CONNECT);
  opsh_task *t = opsh_task_check(L, "redis.connect");

  conn_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->c = NULL;
  luaL_setmetatable(L, REDIS_CONN_META);
  rreq *r = rreq_push(L, NULL, REQ_CONNECT, t);
  rconn *c = calloc(1, sizeof *c);
  uv_getaddrinfo_t *gai = malloc(sizeof *gai);
  char *cacopy = ca ? malloc(calen + 1) : NULL;
  if (!c || !gai || (ca && !cacopy)) {
    free(c), free(gai), free(cacopy);   /* never fall back to the system store for want of a copy */
    return opsh_error(L, "memory", "out of memory");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  c->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  c->loop = opsh_loop(L);
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  memcpy(c->host, host, hlen + 1);
  snprintf(c->servername, sizeof c->servername, "%s", sn ? sn : host);
  snprintf(c->addr, sizeof c->addr, "%s", host);
  c->port = (int)port;
  c->tls = tls;
  c->verify = verify;
  c->timeout_ms = timeout;
  c->connect_timeout_ms = connect_timeout;
  if (ca) {
    memcpy(cacopy, ca, calen);
    cacopy[calen] = '\0';
    c->ca = cacopy;
    c->ca_len = calen;
  }
  ud->c = c;   /* from here on, the userdata's close releases c */
  r->c = c;
  opsh_task_hold(L, -2);

  char portstr[8];
  snprintf(portstr, sizeof portstr, "%d", c->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  gai->data = c;
  c->state = C_RESOLVING;
  int rc = uv_getaddrinfo(c->loop, gai, on_resolved, c->host, portstr, &hints);
  if (rc != 0) {
    free(gai);
    c->state = C_DOWN;
    opsh_error_push(L, "connect", "redis %s:%d: cannot resolve: %s", c->host, c->port, uv_strerror(rc));
    return lua_error(L);
  }
  c->gai = gai;
  c->connecting = r;
  rreq_wait(r, connect_timeout);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), connect_k);
}

/* the box at ctx, the connection below it */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  rreq *r = rreq_take(L, (int)ctx);
  if (r->err || r->oom) {
    rreq_push_error(L, r);
    rreq_release(L, (int)ctx);
    return lua_error(L);
  }
  rreq_release(L, (int)ctx);
  lua_settop(L, (int)ctx - 1);
  return 1;
}

/* conn:_timeout(seconds) -> the previous reply timeout: the Lua layer bounds AUTH and SELECT
** by what is left of connect_timeout, then restores the user's timeout */
static int conn_set_timeout(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  lua_Number s = luaL_checknumber(L, 2);
  uint64_t ms = opsh_duration_ms(L, s, "redis timeout");
  lua_pushnumber(L, c->timeout_ms == OPSH_FOREVER ? HUGE_VAL : (lua_Number)c->timeout_ms / 1000.0);
  c->timeout_ms = s > 0 && ms == 0 ? 1 : ms;
  return 1;
}

/* ---- a test hook: Lua allocations above a size fail ---- */

static lua_Alloc real_alloc;
static size_t fail_over;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  if (nsize > fail_over && nsize > (ptr ? osize : 0)) return NULL;
  return real_alloc(ud, ptr, osize, nsize);
}

/* _fail_alloc_over(bytes | nil): (specs only) every Lua allocation larger than bytes fails, as
** when memory runs out, until called with nil; shows where a reply becomes Lua values */
static int redis_fail_alloc_over(lua_State *L) {
  void *ud;
  lua_Alloc cur = lua_getallocf(L, &ud);
  if (lua_isnoneornil(L, 1)) {
    if (cur == limited_alloc) lua_setallocf(L, real_alloc, ud);
    return 0;
  }
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0, 1, "must be positive");
  fail_over = (size_t)n;
  if (cur != limited_alloc) {
    real_alloc = cur;
    lua_setallocf(L, limited_alloc, ud);
  }
  return 0;
}

static int redis_set_null(lua_State *L) {
  luaL_checkany(L, 1);
  rconn_set_null(L, 1);
  return 0;
}

static const luaL_Reg conn_methods[] = {
  {"close", conn_close},
  {"status", conn_status},
  {"_timeout", conn_set_timeout},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__gc", conn_gc},
  {"__close", conn_close},
  {"__tostring", conn_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg redis_funcs[] = {
  {"connect", redis_connect},
  {"batch", rconn_batch_new},
  {"set_null", redis_set_null},
  {"_fail_alloc_over", redis_fail_alloc_over},
  {NULL, NULL}
};

int luaopen_opsh_redis(lua_State *L) {
  if (luaL_newmetatable(L, REDIS_CONN_META)) {
    luaL_setfuncs(L, conn_meta, 0);
    luaL_newlib(L, conn_methods);
    luaL_setfuncs(L, rconn_cmd_methods, 0);
    luaL_setfuncs(L, rconn_batch_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, redis_funcs);
  rconn_push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushboolean(L, RTLS_NATIVE);
  lua_setfield(L, -2, "native_tls");
  lua_pushfstring(L, "%d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
  lua_setfield(L, -2, "hiredis_version");
  return 1;
}
