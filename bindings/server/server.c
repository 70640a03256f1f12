/*
** server.c — opsh._server: an HTTP/1.1 server on the opsh loop (libuv TCP, http-parser,
** OpenSSL). C accepts connections, reads whole requests and writes responses; the Lua layer
** (lua/opsh/server.lua) takes each request with accept() and runs its handler in a task.
** Handles: opsh.server.server (a listening socket) and opsh.server.exchange (one request's
** response side: respond, or stream + write + finish).
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server.h"

#define SERVER_META "opsh.server.server"
#define EXCHANGE_META "opsh.server.exchange"
#define DEFAULT_MAX_BODY (8 * 1024 * 1024)

typedef struct server_ud {
  srv_server *s;            /* NULL once closed */
} server_ud;

/* ---- listen ---- */

static void on_listener_closed(uv_handle_t *h) {
  srv_server *s = h->data;
  free(h);
  srv_server_unref(s);
}

#define LISTEN "server.listen"

/* listen{host=, port=, cert=, key=, client_ca=, require_client_cert=, max_body=, timeout=}
** -> server; host and port are required here (the Lua layer applies defaults) */
static int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t n;
  const char *host = opsh_opt_string(L, 1, "host", &n, LISTEN);
  lua_Number port = opsh_opt_number(L, 1, "port", 0, LISTEN);
  lua_Number max_body = opsh_opt_number(L, 1, "max_body", DEFAULT_MAX_BODY, LISTEN);
  uint64_t idle_ms = opsh_opt_duration(L, 1, "timeout", 60, LISTEN);
  if (!host) host = "127.0.0.1";
  if (!(port >= 0 && port <= 65535) || port != (lua_Integer)port)
    return opsh_error(L, "usage", LISTEN ": option 'port' must be an integer 0..65535");
  if (!(max_body >= 0 && max_body <= (lua_Number)SIZE_MAX / 2))
    return opsh_error(L, "usage", LISTEN ": option 'max_body' must be 0 or more bytes");
  if (idle_ms == 0) return opsh_error(L, "usage", LISTEN ": option 'timeout' must be positive");

  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr) != 0)
    return opsh_error(L, "usage", LISTEN ": host '%s' is not an IP address", host);

  server_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->s = NULL;
  luaL_setmetatable(L, SERVER_META);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);   /* the Lua layer's state: routes, tasks */

  SSL_CTX *ctx = NULL;
  size_t cert_len, key_len, ca_len;
  const char *cert = opsh_opt_string(L, 1, "cert", &cert_len, LISTEN);
  const char *key = opsh_opt_secret(L, 1, "key", &key_len, LISTEN);
  const char *ca = opsh_opt_string(L, 1, "client_ca", &ca_len, LISTEN);
  lua_getfield(L, 1, "require_client_cert");
  int require_client = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (cert || key) {
    if (!cert || !key) return opsh_error(L, "usage", "TLS needs both a certificate and a key");
    char err[300];
    ctx = srv_tls_ctx(cert, cert_len, key, key_len, ca, ca_len, require_client, err, sizeof err);
    if (!ctx) return opsh_error(L, "tls", "%s", err);
  } else if (ca) {
    return opsh_error(L, "usage", "client_ca needs TLS (a certificate and a key)");
  }

  srv_server *s = calloc(1, sizeof *s);
  uv_tcp_t *tcp = malloc(sizeof *tcp);
  if (!s || !tcp) {
    free(s);
    free(tcp);
    SSL_CTX_free(ctx);
    return opsh_error(L, "memory", "out of memory");
  }
  s->refs = 2;   /* the handle and the listener */
  s->ssl_ctx = ctx;
  s->max_body = (size_t)max_body;
  s->idle_ms = idle_ms;
  s->listener = tcp;
  uv_tcp_init(opsh_loop(L), tcp);
  tcp->data = s;
  int r = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)tcp, 511, srv_on_connection);
  if (r != 0) {
    uv_close((uv_handle_t *)tcp, on_listener_closed);
    s->listener = NULL;
    srv_server_unref(s);
    opsh_error_push(L, "server", "cannot listen on %s:%d: %s", host, (int)port, uv_strerror(r));
    opsh_error_setstr(L, "code", uv_err_name(r));
    return lua_error(L);
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &blen);
  s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
  u->s = s;
  return 1;
}

/* ---- the server handle ---- */

static server_ud *check_server(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SERVER_META);
}

static srv_server *open_server(lua_State *L, int idx) {
  server_ud *u = check_server(L, idx);
  if (!u->s) opsh_error(L, "closed", "the server is closed");
  return u->s;
}

static int server_close(lua_State *L) {
  server_ud *u = check_server(L, 1);
  srv_server *s = u->s;
  if (!s) return 0;
  u->s = NULL;
  s->closed = 1;
  if (s->listener) {
    uv_close((uv_handle_t *)s->listener, on_listener_closed);
    s->listener = NULL;
  }
  while (s->conns) srv_conn_close(s->conns);
  if (s->acceptor) {
    opsh_task *t = s->acceptor;
    s->acceptor = NULL;
    opsh_task_wake(t, 0);
  }
  srv_server_unref(s);
  return 0;
}

static void accept_cancel(void *ud) {
  srv_server *s = ud;
  s->acceptor = NULL;
}

/* [-0, +1, m] the request table of the connection's current request */
static void push_request(lua_State *L, srv_conn *c) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, http_method_str(c->method));
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, c->url.data ? c->url.data : "", c->url.len);
  lua_setfield(L, -2, "target");
  lua_pushfstring(L, "1.%d", c->http_minor);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, c->remote);
  lua_setfield(L, -2, "remote");
  lua_pushboolean(L, c->ssl != NULL);
  lua_setfield(L, -2, "tls");
  lua_pushlstring(L, c->body.data ? c->body.data : "", c->body.len);
  lua_setfield(L, -2, "body");
  if (c->body.cap > 64 * 1024) byte_buf_free(&c->body);

  lua_newtable(L);
  const char *p = c->headers.data, *end = p + c->headers.len;
  while (p && p < end) {
    const char *v = p + strlen(p) + 1;
    if (v > end) break;
    if (lua_getfield(L, -1, p) == LUA_TSTRING) {   /* repeated: one value, RFC 9110 list form */
      lua_pushstring(L, strcmp(p, "cookie") == 0 ? "; " : ", ");
      lua_pushstring(L, v);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, v);
    }
    lua_setfield(L, -2, p);
    p = v + strlen(v) + 1;
  }
  lua_setfield(L, -2, "headers");

  if (c->cert) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, c->cert->subject ? c->cert->subject : "");
    lua_setfield(L, -2, "subject");
    if (c->cert->cn) {
      lua_pushstring(L, c->cert->cn);
      lua_setfield(L, -2, "cn");
    }
    lua_createtable(L, c->cert->o_count, 0);
    for (int i = 0; i < c->cert->o_count; i++) {
      lua_pushstring(L, c->cert->o[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "o");
    lua_pushstring(L, c->cert->sha256);
    lua_setfield(L, -2, "sha256");
    lua_setfield(L, -2, "client_cert");
  }
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  server_ud *u = lua_touserdata(L, 1);
  srv_server *s = u->s;
  if (!s) {
    lua_pushnil(L);
    return 1;
  }
  srv_conn *c = s->ready_head;
  if (!c) {
    if (status == LUA_YIELD) {   /* its connection went away before we ran: ask again */
      lua_pushboolean(L, 0);
      return 1;
    }
    if (s->acceptor) return opsh_error(L, "usage", "another task is already accepting on this server");
    s->acceptor = opsh_task_check(L, "server:accept");
    return opsh_yield(L, accept_cancel, s, 0, accept_k);
  }
  s->ready_head = c->rnext;
  if (!s->ready_head) s->ready_tail = NULL;
  c->rnext = NULL;
  c->state = CONN_HANDLING;
  push_request(L, c);
  srv_exchange *x = lua_newuserdatauv(L, sizeof *x, 0);
  memset(x, 0, sizeof *x);
  luaL_setmetatable(L, EXCHANGE_META);
  x->conn = c;
  x->head = c->method == HTTP_HEAD;
  c->x = x;
  return 2;
}

/* server:accept() -> request, exchange | false (nothing after all; call again) | nil (closed) */
static int server_accept(lua_State *L) {
  check_server(L, 1);
  lua_settop(L, 1);
  return accept_k(L, LUA_OK, 0);
}

static int server_port(lua_State *L) {
  server_ud *u = check_server(L, 1);
  if (!u->s) return 0;
  lua_pushinteger(L, u->s->port);
  return 1;
}

static int server_is_closed(lua_State *L) {
  lua_pushboolean(L, check_server(L, 1)->s == NULL);
  return 1;
}

/* server:state() -> the Lua layer's table for this server */
static int server_state(lua_State *L) {
  check_server(L, 1);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int server_stats(lua_State *L) {
  srv_server *s = open_server(L, 1);
  int conns = 0, queued = 0;
  for (srv_conn *c = s->conns; c; c = c->next) conns++;
  for (srv_conn *c = s->ready_head; c; c = c->rnext) queued++;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, conns);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, s->served);
  lua_setfield(L, -2, "served");
  return 1;
}

static int server_tostring(lua_State *L) {
  server_ud *u = check_server(L, 1);
  if (u->s) lua_pushfstring(L, "opsh.server (%s, port %d)", u->s->ssl_ctx ? "https" : "http", u->s->port);
  else lua_pushliteral(L, "opsh.server (closed)");
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"accept", server_accept},
  {"close", server_close},
  {"port", server_port},
  {"is_closed", server_is_closed},
  {"state", server_state},
  {"stats", server_stats},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", server_close},
  {"__close", server_close},
  {"__tostring", server_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* ---- the exchange: one request's response ---- */

static srv_exchange *check_exchange(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, EXCHANGE_META);
}

/* [-0, +0, -] the finished exchange no longer refers to its connection */
static void exchange_detach(srv_exchange *x, int keep_alive) {
  srv_conn *c = x->conn;
  x->done = 1;
  x->conn = NULL;
  if (!c) return;
  c->x = NULL;
  srv_conn_request_done(c, keep_alive);
}

static int has_crlf(const char *s, size_t n) {
  return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

static int reserved_header(const char *name) {
  return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
         strcasecmp(name, "connection") == 0 || strcasecmp(name, "date") == 0;
}

/* [-0, +0, v] the status line and headers (table at idx: name -> string | list of strings);
** with b == NULL it only checks the headers, raising before anything is allocated */
static void build_head(lua_State *L, byte_buf *b, int status, int hidx) {
  char line[128];
  if (b) {
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, srv_reason(status));
    srv_buf_add(b, line, (size_t)n);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    n = (int)strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    srv_buf_add(b, line, (size_t)n);
  }
  if (lua_isnoneornil(L, hidx)) return;
  luaL_checktype(L, hidx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, hidx)) {
    size_t nl;
    if (lua_type(L, -2) != LUA_TSTRING) opsh_error(L, "usage", "response header names must be strings");
    const char *name = lua_tolstring(L, -2, &nl);
    if (nl == 0 || has_crlf(name, nl) || memchr(name, ':', nl))
      opsh_error(L, "usage", "invalid response header name '%s'", name);
    if (!reserved_header(name)) {
      int list = lua_istable(L, -1);
      int count = list ? (int)luaL_len(L, -1) : 1;
      for (int i = 1; i <= count; i++) {
        if (list) lua_rawgeti(L, -1, i); else lua_pushvalue(L, -1);
        size_t vl;
        const char *v = lua_tolstring(L, -1, &vl);
        if (!v) opsh_error(L, "usage", "response header '%s' must be a string, a number or a list", name);
        if (has_crlf(v, vl)) opsh_error(L, "usage", "response header '%s' contains a line break", name);
        if (b) {
          srv_buf_add(b, name, nl);
          srv_buf_add(b, ": ", 2);
          srv_buf_add(b, v, vl);
          srv_buf_add(b, "\r\n", 2);
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
}

static int check_status(lua_State *L, int idx) {
  lua_Integer status = luaL_checkinteger(L, idx);
  luaL_argcheck(L, status >= 200 && status <= 599, idx, "status must be 200..599");
  return (int)status;
}

static srv_exchange *open_exchange(lua_State *L, int idx) {
  srv_exchange *x = check_exchange(L, idx);
  if (x->done) opsh_error(L, "usage", "the response was already sent");
  return x;
}

/* exchange:respond(status, headers, body) -> true | false (the client is gone) */
static int exchange_respond(lua_State *L) {
  srv_exchange *x = open_exchange(L, 1);
  if (x->streaming) return opsh_error(L, "usage", "a streamed response ends with close(), not respond()");
  int status = check_status(L, 2);
  size_t blen = 0;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  srv_conn *c = x->conn;
  if (!c) {
    x->done = 1;
    lua_pushboolean(L, 0);
    return 1;
  }
  build_head(L, NULL, status, 3);
  byte_buf b = {0};
  build_head(L, &b, status, 3);
  int keep = c->keep_alive && !c->srv->closed;
  int bodyless = status == 204 || status == 304;
  char line[64];
  int n = 0;
  if (!bodyless) n = snprintf(line, sizeof line, "Content-Length: %zu\r\n", blen);
  srv_buf_add(&b, line, (size_t)n);
  if (!keep) srv_buf_add(&b, "Connection: close\r\n", 19);
  else if (c->http_minor == 0) srv_buf_add(&b, "Connection: keep-alive\r\n", 24);
  srv_buf_add(&b, "\r\n", 2);
  if (!bodyless && !x->head) srv_buf_add(&b, body, blen);
  int r = b.data ? srv_conn_send(c, b.data, b.len, 0) : -1;
  byte_buf_free(&b);
  if (r != 0) {
    srv_conn_close(c);
    x->done = 1;
    lua_pushboolean(L, 0);
    return 1;
  }
  exchange_detach(x, keep);
  lua_pushboolean(L, 1);
  return 1;
}

/* exchange:stream(status, headers) -> true | false (the client is gone) */
static int exchange_stream(lua_State *L) {
  srv_exchange *x = open_exchange(L, 1);
  if (x->streaming) return opsh_error(L, "usage", "the response is already streaming");
  int status = check_status(L, 2);
  srv_conn *c = x->conn;
  if (!c) return opsh_error(L, "closed", "the client closed the connection");
  build_head(L, NULL, status, 3);
  byte_buf b = {0};
  build_head(L, &b, status, 3);
  x->chunked = c->http_minor >= 1;
  if (x->chunked) srv_buf_add(&b, "Transfer-Encoding: chunked\r\n", 28);
  else {
    c->keep_alive = 0;   /* HTTP/1.0: the body ends when the connection does */
    srv_buf_add(&b, "Connection: close\r\n", 19);
  }
  srv_buf_add(&b, "\r\n", 2);
  int r = b.data ? srv_conn_send(c, b.data, b.len, 0) : -1;
  byte_buf_free(&b);
  x->streaming = 1;
  c->state = CONN_STREAMING;
  if (r != 0) {
    srv_conn_close(c);
    return opsh_error(L, "closed", "the client closed the connection");
  }
  return 0;
}

static void write_cancel(void *ud) {
  srv_exchange *x = ud;
  x->waiter = NULL;
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  srv_exchange *x = lua_touserdata(L, 1);
  if (x->write_ok) return 0;
  return opsh_error(L, "closed", "the client closed the connection");
}

/* exchange:write(data): one chunk; suspends until it is handed to the kernel */
static int exchange_write(lua_State *L) {
  srv_exchange *x = open_exchange(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  if (!x->streaming) return opsh_error(L, "usage", "write() needs stream() first");
  if (x->waiter) return opsh_error(L, "usage", "another write is still waiting on this response");
  opsh_task *t = opsh_task_check(L, "response:write");
  srv_conn *c = x->conn;
  if (!c) return opsh_error(L, "closed", "the client closed the connection");
  if (n == 0 || x->head) return 0;
  byte_buf b = {0};
  char line[32];
  if (x->chunked) srv_buf_add(&b, line, (size_t)snprintf(line, sizeof line, "%zx\r\n", n));
  srv_buf_add(&b, data, n);
  if (x->chunked) srv_buf_add(&b, "\r\n", 2);
  int r = b.data ? srv_conn_send(c, b.data, b.len, 1) : -1;
  byte_buf_free(&b);
  if (r != 0) {
    srv_conn_close(c);
    return opsh_error(L, "closed", "the client closed the connection");
  }
  x->waiter = t;
  return opsh_yield(L, write_cancel, x, 0, write_k);
}

/* exchange:finish(): the last chunk; the connection goes on with its next request */
static int exchange_finish(lua_State *L) {
  srv_exchange *x = open_exchange(L, 1);
  if (!x->streaming) return opsh_error(L, "usage", "finish() needs stream() first");
  if (x->waiter) return opsh_error(L, "usage", "a write is still waiting on this response");
  srv_conn *c = x->conn;
  if (!c) {
    x->done = 1;
    return 0;
  }
  int keep = c->keep_alive && !c->srv->closed;
  if (x->chunked && !x->head && srv_conn_send(c, "0\r\n\r\n", 5, 0) != 0) {
    srv_conn_close(c);
    x->done = 1;
    return 0;
  }
  exchange_detach(x, keep);
  return 0;
}

/* exchange:abort(): drop the connection (a stream that failed half-way must not look complete) */
static int exchange_abort(lua_State *L) {
  srv_exchange *x = check_exchange(L, 1);
  x->done = 1;
  if (x->conn) srv_conn_close(x->conn);
  return 0;
}

static int exchange_is_closed(lua_State *L) {
  srv_exchange *x = check_exchange(L, 1);
  lua_pushboolean(L, x->conn == NULL);
  return 1;
}

static int exchange_is_done(lua_State *L) {
  lua_pushboolean(L, check_exchange(L, 1)->done);
  return 1;
}

static int exchange_gc(lua_State *L) {
  srv_exchange *x = check_exchange(L, 1);
  if (x->conn && !x->done) {   /* nobody will answer: do not leave the client waiting */
    srv_conn *c = x->conn;
    c->x = NULL;
    x->conn = NULL;
    srv_conn_close(c);
  }
  x->done = 1;
  return 0;
}

static const luaL_Reg exchange_methods[] = {
  {"respond", exchange_respond},
  {"stream", exchange_stream},
  {"write", exchange_write},
  {"finish", exchange_finish},
  {"abort", exchange_abort},
  {"is_closed", exchange_is_closed},
  {"is_done", exchange_is_done},
  {NULL, NULL}
};

static const luaL_Reg exchange_meta[] = {
  {"__gc", exchange_gc},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg server_funcs[] = {
  {"listen", l_listen},
  {NULL, NULL}
};

/* [-0, +0, m] register a metatable `name` with methods in __index */
static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
}

int luaopen_opsh_server(lua_State *L) {
  luaL_newlib(L, server_funcs);
  new_meta(L, SERVER_META, server_meta, server_methods);
  lua_setfield(L, -2, "server_meta");
  new_meta(L, EXCHANGE_META, exchange_meta, exchange_methods);
  lua_setfield(L, -2, "exchange_meta");
  return 1;
}
