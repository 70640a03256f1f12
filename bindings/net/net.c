/*
** net.c — opsh._net: the small TCP facts the twin and tests need: a free loopback port, and whether
** something accepts connections on a port (a non-blocking connect on the loop).
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "opsh.h"

/* [-0, +0, v] parse host:port into addr, raising a usage error for anything but an IP literal */
static void check_addr(lua_State *L, int hidx, int pidx, struct sockaddr_storage *addr) {
  const char *host = luaL_checkstring(L, hidx);
  lua_Integer port = luaL_checkinteger(L, pidx);
  luaL_argcheck(L, port >= 0 && port <= 65535, pidx, "port out of range");
  memset(addr, 0, sizeof *addr);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr) != 0)
    opsh_error(L, "usage", "'%s' is not an IP address", host);
}

/* free_port([host]) -> a port nothing listens on now (the kernel's pick for bind(0)) */
static int net_free_port(lua_State *L) {
  struct sockaddr_storage addr;
  lua_settop(L, 1);
  if (lua_isnil(L, 1)) {
    lua_pushliteral(L, "127.0.0.1");
    lua_replace(L, 1);
  }
  lua_pushinteger(L, 0);
  check_addr(L, 1, 2, &addr);
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len = addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, len) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    if (fd >= 0) close(fd);
    return opsh_error(L, "net", "cannot find a free port on %s: %s", lua_tostring(L, 1), strerror(errno));
  }
  close(fd);
  int port = addr.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&addr)->sin_port)
                                       : ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
  lua_pushinteger(L, port);
  return 1;
}

/* A probe owns two handles (the socket and its deadline) and is freed when both have closed
** and the task has taken its result (probe_k) or let it go (probe_cancel). */
typedef struct probe {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t req;
  opsh_task *task;      /* NULL once the task no longer waits */
  int refs;             /* the two handles, and the task until it has the result */
  int done;             /* the result is in ok, reason */
  int ok;
  const char *reason;   /* a static string */
} probe;

static void probe_unref(probe *p) {
  if (--p->refs == 0) free(p);
}

static void probe_closed(uv_handle_t *h) { probe_unref(h->data); }

static void probe_close_handles(probe *p) {
  if (!uv_is_closing((uv_handle_t *)&p->tcp)) uv_close((uv_handle_t *)&p->tcp, probe_closed);
  if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_close((uv_handle_t *)&p->timer, probe_closed);
}

/* the first outcome wins: keep it for the task (the wake rule, opsh.h) and close both handles */
static void probe_finish(probe *p, int ok, const char *reason) {
  if (!p->done) {
    p->done = 1;
    p->ok = ok;
    p->reason = reason;
    if (p->task) opsh_task_ready(p->task);
  }
  probe_close_handles(p);
}

static void on_connect(uv_connect_t *req, int status) {
  probe_finish(req->data, status == 0, status == 0 ? "open" : uv_strerror(status));
}

/* a listener that takes no connections (a full backlog) never answers: the probe gives up */
static void on_probe_timeout(uv_timer_t *h) {
  probe_finish(h->data, 0, "timed out");
}

/* the task was cancelled, before or after the outcome: it lets the probe go */
static void probe_cancel(void *ud) {
  probe *p = ud;
  p->task = NULL;
  p->done = 1;   /* the connect callback still runs, with UV_ECANCELED, before the close callbacks */
  probe_close_handles(p);
  probe_unref(p);
}

static int probe_k(lua_State *L, int status, lua_KContext ctx) {
  probe *p = (probe *)ctx;
  int ok = p->ok;
  const char *reason = p->reason;
  probe_unref(p);
  lua_pushboolean(L, ok);
  lua_pushstring(L, reason);
  return 2;
}

/* port_open(host, port [, timeout = 2]) -> true, "open" | false, reason (connection refused, timed out...) */
static int net_port_open(lua_State *L) {
  struct sockaddr_storage addr;
  check_addr(L, 1, 2, &addr);
  uint64_t ms = opsh_optduration(L, 3, 2.0, "net.port_open");
  if (ms == 0) return opsh_error(L, "usage", "net.port_open: the timeout must be at least 1 ms");
  opsh_task *t = opsh_task_check(L, "net.port_open");
  probe *p = calloc(1, sizeof *p);
  if (!p) return opsh_error(L, "memory", "out of memory");
  p->req.data = p;
  p->tcp.data = p;
  p->timer.data = p;
  p->refs = 3;
  uv_tcp_init(opsh_loop(L), &p->tcp);
  uv_timer_init(opsh_loop(L), &p->timer);
  int rc = uv_tcp_connect(&p->req, &p->tcp, (struct sockaddr *)&addr, on_connect);
  if (rc != 0) {
    probe_cancel(p);
    lua_pushboolean(L, 0);
    lua_pushstring(L, uv_strerror(rc));
    return 2;
  }
  p->task = t;
  if (ms != OPSH_FOREVER) uv_timer_start(&p->timer, on_probe_timeout, ms, 0);
  return opsh_yield(L, probe_cancel, p, (lua_KContext)p, probe_k);
}

static const luaL_Reg net_funcs[] = {
  {"free_port", net_free_port},
  {"port_open", net_port_open},
  {NULL, NULL}
};

int luaopen_opsh_net(lua_State *L) {
  luaL_newlib(L, net_funcs);
  return 1;
}
