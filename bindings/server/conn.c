/*
** conn.c — opsh._server connections: accepting, reading HTTP/1.1 requests with
** http-parser, the keep-alive cycle, writes with flush notification, and closing
** (lingering after an error response so the client reads it before the FIN).
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server.h"

#define READ_AHEAD_MAX (1 << 20)   /* pipelined bytes kept while a handler runs */
#define LINGER_MS 2000             /* discard input this long after an error response */
#define URL_MAX (64 * 1024)

static char read_buf[64 * 1024];   /* one loop, one thread: each read is consumed at once */

int srv_buf_add(byte_buf *b, const char *p, size_t n) {
  if (byte_buf_reserve(b, n + 1) != 0 || byte_buf_add(b, p, n) != 0) return -1;
  b->data[b->len] = '\0';
  return 0;
}

void srv_server_unref(srv_server *s) {
  if (--s->refs > 0) return;
  if (s->ssl_ctx) SSL_CTX_free(s->ssl_ctx);
  free(s);
}

const char *srv_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error"
                                                                          : "Server Error";
  }
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h) {
  srv_conn *c = h->data;
  if (--c->handles > 0) return;
  if (c->ssl) SSL_free(c->ssl);   /* frees both memory BIOs */
  srv_cert_free(c->cert);
  byte_buf_free(&c->url);
  byte_buf_free(&c->headers);
  byte_buf_free(&c->body);
  byte_buf_free(&c->in);
  srv_server_unref(c->srv);
  free(c);
}

static void ready_remove(srv_server *s, srv_conn *c) {
  srv_conn **p = &s->ready_head;
  srv_conn *prev = NULL;
  while (*p && *p != c) {
    prev = *p;
    p = &(*p)->rnext;
  }
  if (!*p) return;
  *p = c->rnext;
  if (s->ready_tail == c) s->ready_tail = prev;
  c->rnext = NULL;
}

/* wake the task waiting in write(): its write_k reads the outcome (the wake rule, opsh.h) */
static void wake_writer(srv_exchange *x, int ok) {
  opsh_task *t = x->waiter;
  if (!t) return;
  x->waiter = NULL;
  x->write_ok = ok;
  opsh_task_ready(t);
}

void srv_conn_close(srv_conn *c) {
  if (c->state == CONN_CLOSING) return;
  int was = c->state;
  srv_server *s = c->srv;
  c->state = CONN_CLOSING;
  if (c->prev) c->prev->next = c->next; else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (was == CONN_QUEUED) ready_remove(s, c);
  if (c->x) {
    srv_exchange *x = c->x;
    c->x = NULL;
    x->conn = NULL;
    wake_writer(x, 0);
  }
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t) { srv_conn_close(t->data); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  free(req);   /* the peer's EOF or the linger timer closes the connection */
}

/* everything queued is out: send FIN, then discard input until EOF or the linger delay */
static void conn_linger(srv_conn *c) {
  if (c->state == CONN_CLOSING) return;
  if (c->ssl && c->handshaken) {
    SSL_shutdown(c->ssl);   /* close_notify */
    char *p;
    long n = BIO_get_mem_data(c->wbio, &p);
    if (n > 0) srv_conn_write_raw(c, p, (size_t)n, 0);
    (void)BIO_reset(c->wbio);
  }
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    srv_conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* stop reading requests; close gracefully once the queued bytes are flushed */
void srv_conn_close_after_flush(srv_conn *c) {
  if (c->state == CONN_CLOSING || c->close_when_flushed) return;
  c->close_when_flushed = 1;
  /* a client that never reads must not keep the connection forever */
  uint64_t idle = c->srv->idle_ms;   /* OPSH_FOREVER: math.huge */
  uint64_t linger = idle > OPSH_FOREVER - LINGER_MS ? OPSH_FOREVER : idle + LINGER_MS;
  uv_timer_start(&c->timer, on_linger_timeout, linger, 0);
  if (c->writes == 0) conn_linger(c);
}

/* ---- writing ---- */

struct srv_write {
  uv_write_t req;
  srv_conn *conn;
  int notify;
  char data[];
};

static void on_write_done(uv_write_t *req, int status) {
  struct srv_write *w = (struct srv_write *)req;
  srv_conn *c = w->conn;
  int notify = w->notify;
  free(w);
  c->writes--;
  if (c->state == CONN_CLOSING) return;
  if (status < 0) {
    srv_conn_close(c);   /* wakes a waiting writer with "closed" */
    return;
  }
  if (notify && c->x) wake_writer(c->x, 1);
  if (c->close_when_flushed && c->writes == 0) conn_linger(c);
}

int srv_conn_write_raw(srv_conn *c, const char *data, size_t len, int notify) {
  if (c->state == CONN_CLOSING) return UV_EPIPE;
  struct srv_write *w = malloc(sizeof *w + len);
  if (!w) return UV_ENOMEM;
  memcpy(w->data, data, len);
  w->conn = c;
  w->notify = notify;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
  if (r != 0) {
    free(w);
    return r;
  }
  c->writes++;
  return 0;
}

int srv_conn_send(srv_conn *c, const char *data, size_t len, int notify) {
  return c->ssl ? srv_tls_send(c, data, len, notify) : srv_conn_write_raw(c, data, len, notify);
}

/* answer a request the server itself refuses, then close */
static void conn_reject(srv_conn *c, int status, const char *why) {
  if (c->state == CONN_CLOSING || c->close_when_flushed) return;
  char body[256], head[512];
  int bl = snprintf(body, sizeof body, "{\"error\":\"%s\"}", why);
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n\r\n%s", status, srv_reason(status), bl, body);
  c->state = CONN_HANDLING;
  srv_conn_send(c, head, (size_t)hl, 0);
  srv_conn_close_after_flush(c);
}

/* ---- reading ---- */

static void on_idle_timeout(uv_timer_t *t) {
  srv_conn *c = t->data;
  if (c->state == CONN_READING) srv_conn_close(c);
}

static void arm_idle(srv_conn *c) {
  uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_ms, 0);
}

static int on_message_begin(http_parser *p) {
  srv_conn *c = p->data;
  c->url.len = c->headers.len = c->body.len = 0;
  c->last_was_value = -1;
  c->reject = 0;
  arm_idle(c);   /* the whole request must arrive within the timeout */
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  srv_conn *c = p->data;
  if (c->url.len + len > URL_MAX) {
    c->reject = 414;
    return -1;
  }
  return srv_buf_add(&c->url, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  srv_conn *c = p->data;
  if (c->last_was_value == 1 && srv_buf_add(&c->headers, "", 1)) return -1;   /* ends the value */
  c->last_was_value = 0;
  size_t start = c->headers.len;
  if (srv_buf_add(&c->headers, at, len)) return -1;
  for (size_t i = start; i < c->headers.len; i++)
    c->headers.data[i] = (char)tolower((unsigned char)c->headers.data[i]);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  srv_conn *c = p->data;
  if (c->last_was_value == 0 && srv_buf_add(&c->headers, "", 1)) return -1;   /* ends the name */
  c->last_was_value = 1;
  return srv_buf_add(&c->headers, at, len);
}

static const char *find_header(srv_conn *c, const char *name) {
  const char *p = c->headers.data, *end = p + c->headers.len;
  while (p && p < end) {
    const char *v = p + strlen(p) + 1;
    if (v >= end) break;
    if (strcmp(p, name) == 0) return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

static int on_headers_complete(http_parser *p) {
  srv_conn *c = p->data;
  if (c->last_was_value == 1 && srv_buf_add(&c->headers, "", 1)) return -1;
  c->last_was_value = -1;
  c->method = p->method;
  c->http_minor = p->http_minor;
  c->keep_alive = http_should_keep_alive(p);
  c->upgrade = p->upgrade;
  if (p->upgrade) c->keep_alive = 0;   /* protocol upgrades (exec, port-forward) are not served */
  if (p->content_length != ULLONG_MAX && p->content_length > c->srv->max_body) {
    c->reject = 413;
    return -1;
  }
  const char *expect = find_header(c, "expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    srv_conn_send(c, cont, sizeof cont - 1, 0);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  srv_conn *c = p->data;
  if (c->body.len + len > c->srv->max_body) {
    c->reject = 413;
    return -1;
  }
  return srv_buf_add(&c->body, at, len);
}

static int on_message_complete(http_parser *p) {
  srv_conn *c = p->data;
  srv_server *s = c->srv;
  uv_timer_stop(&c->timer);
  http_parser_pause(p, 1);   /* one request at a time; what follows waits in c->in */
  c->state = CONN_QUEUED;
  c->rnext = NULL;
  if (s->ready_tail) s->ready_tail->rnext = c; else s->ready_head = c;
  s->ready_tail = c;
  if (s->acceptor) {
    opsh_task *t = s->acceptor;
    s->acceptor = NULL;
    opsh_task_wake(t, 0);
  }
  return 0;
}

static const http_parser_settings parser_settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

void srv_conn_feed(srv_conn *c, const char *data, size_t len) {
  if (c->state == CONN_CLOSING || c->close_when_flushed) return;
  if (c->state != CONN_READING) {
    if (c->in.len + len > READ_AHEAD_MAX || srv_buf_add(&c->in, data, len)) {
      conn_reject(c, 400, "too much pipelined data");
    }
    return;
  }
  size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
  if (c->state == CONN_CLOSING) return;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_PAUSED) {
    if (n < len && srv_buf_add(&c->in, data + n, len - n)) conn_reject(c, 400, "out of memory");
    return;
  }
  if (e == HPE_OK) return;
  if (c->reject == 413) conn_reject(c, 413, "request body too large");
  else if (c->reject == 414) conn_reject(c, 414, "request target too long");
  else if (e == HPE_HEADER_OVERFLOW) conn_reject(c, 431, "request headers too large");
  else conn_reject(c, 400, http_errno_description(e));
}

void srv_conn_request_done(srv_conn *c, int keep_alive) {
  if (c->state == CONN_CLOSING) return;
  c->srv->served++;
  if (!keep_alive || c->srv->closed) {
    c->state = CONN_HANDLING;
    srv_conn_close_after_flush(c);
    return;
  }
  c->state = CONN_READING;
  http_parser_pause(&c->parser, 0);
  arm_idle(c);
  if (c->in.len) {
    byte_buf pending = c->in;
    memset(&c->in, 0, sizeof c->in);
    srv_conn_feed(c, pending.data, pending.len);
    byte_buf_free(&pending);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  buf->base = read_buf;
  buf->len = sizeof read_buf;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  srv_conn *c = st->data;
  if (n < 0) {
    srv_conn_close(c);   /* EOF or reset: a streaming handler sees "closed" */
    return;
  }
  if (n == 0 || c->close_when_flushed) return;   /* lingering: input is discarded */
  if (c->ssl) srv_tls_input(c, buf->base, (size_t)n);
  else srv_conn_feed(c, buf->base, (size_t)n);
}

static void format_peer(srv_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
      return;
    }
    uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
}

void srv_on_connection(uv_stream_t *listener, int status) {
  srv_server *s = listener->data;
  if (status < 0 || s->closed) return;
  srv_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->srv = s;
  s->refs++;
  c->state = CONN_READING;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    srv_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  format_peer(c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->last_was_value = -1;
  if (s->ssl_ctx && srv_tls_start(c) != 0) {
    srv_conn_close(c);
    return;
  }
  arm_idle(c);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}
