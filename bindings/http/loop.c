/*
** loop.c — one libcurl multi handle for the process, driven by the libuv loop:
** curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION → one uv_poll_t each) and
** when to call back (CURLMOPT_TIMERFUNCTION → one uv_timer_t); events go back to curl
** through curl_multi_socket_action. Connections stay in the multi's cache, so requests to
** the same host reuse them (HTTP/1.1 keep-alive, or HTTP/2 streams on one connection).
** Idle easy handles are pooled. Nothing here calls Lua: finished transfers wake their task.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include "http.h"

#define POOL_MAX 128
#define DEFAULT_MAX_HOST_CONNECTIONS 64L
/* idle connections kept for reuse; curl's own default (4 per handle in the multi) shrinks
** as transfers finish and would close keep-alive connections about to be reused */
#define DEFAULT_MAX_CACHED 256L

typedef struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  int events;                 /* UV_READABLE|UV_WRITABLE being watched */
  int parked;                 /* curl stopped watching it; kept until the next prepare */
  struct sock_ctx *prev, *next;   /* all sockets */
  struct sock_ctx *pnext;         /* parked sockets */
} sock_ctx;

typedef struct fd_slot {
  sock_ctx *ctx;
  unsigned char owned;        /* opened by on_opensocket: its close goes through on_closesocket */
} fd_slot;

typedef struct http_global {
  CURLM *multi;
  CURLSH *share;
  uv_loop_t *loop;
  uv_timer_t *timer;          /* malloc'ed, freed in its close callback */
  uv_prepare_t *prepare;      /* runs curl's due work and drops parked sockets before each poll */
  int due_now;                /* curl asked to be called back at once */
  http_xfer *running;         /* transfers added to the multi handle */
  sock_ctx *sockets;          /* watched sockets */
  sock_ctx *parked;
  fd_slot *fds;
  int nfds;
  long nsockets, nrunning;
  CURL *pool[POOL_MAX];
  int npool;
} http_global;

static http_global *G;

/* ---- finished transfers ---- */

static void unlink_running(http_xfer *x) {
  if (x->prev) x->prev->next = x->next; else if (G && G->running == x) G->running = x->next;
  if (x->next) x->next->prev = x->prev;
  x->prev = x->next = NULL;
  if (G) G->nrunning--;
}

static void check_done(void) {
  CURLMsg *msg;
  int left;
  while (G && (msg = curl_multi_info_read(G->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    http_xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (!x) continue;
    x->result = msg->data.result;
    long version = 0;
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
    x->version = version;
    long connects = 0;
    char *scheme = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(x->easy, CURLINFO_SCHEME, &scheme);
    x->fresh_tls = connects > 0 && scheme && strcasecmp(scheme, "https") == 0;
    if (!x->status) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    /* why a connection failed; curl keeps the value across transfers on the handle, so only
    ** a connect failure of this one is read */
    long os_errno = 0;
    if (x->result == CURLE_COULDNT_CONNECT && curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK)
      x->os_errno = (int)os_errno;
    /* curl reports success for a connection closed inside the headers of a response (it had
    ** some header bytes): there is no response to give */
    if (x->result == CURLE_OK && !x->head_done) x->cut_head = 1;
    if (x->result == CURLE_OK && x->nsfields > 0) http_secret_split(x);
    http_xfer_release(x);
    http_xfer_notify(x);
  }
}

/* ---- curl → libuv ----
** A keep-alive connection goes idle after each response: curl stops watching its socket
** (CURL_POLL_REMOVE) and watches it again for the next request. Stopping and restarting a
** uv_poll_t costs epoll_ctl calls each time, so a socket curl opened (and will close through
** on_closesocket) is parked instead: still watched, its events ignored by curl, and dropped
** at the next prepare phase unless a new transfer took it back in between. */

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_ctx *c = h->data;
  int flags = 0;
  if (status < 0) {
    /* libuv reports a socket with an error pending (POLLERR: a reset, typically a server that
    ** closed a keep-alive connection as it was reused) as a failed poll, and stops watching it.
    ** curl is told the socket is ready, not CURL_CSELECT_ERR: it reads or writes, sees the
    ** reset, and retries a request on a dead reused connection by itself; told
    ** CURL_CSELECT_ERR it fails the transfer ("select/poll returned error") instead. */
    events = c->events ? c->events : UV_READABLE | UV_WRITABLE;
  }
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  /* c may be closed by curl during the call: keep only the fd */
  curl_socket_t fd = c->fd;
  curl_multi_socket_action(G->multi, fd, flags, &running);
  if (status < 0 && G && fd < G->nfds && (c = G->fds[fd].ctx) && !c->parked &&
      !uv_is_active((uv_handle_t *)&c->poll) && c->events)
    uv_poll_start(&c->poll, c->events, on_poll);   /* curl still watches it */
  check_done();
}

static void run_timeouts(void) {
  int running;
  G->due_now = 0;
  curl_multi_socket_action(G->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done();
}

static void on_timeout(uv_timer_t *h) { run_timeouts(); }

static fd_slot *slot(curl_socket_t fd) {
  if (fd < 0) return NULL;
  if (fd >= G->nfds) {
    int n = G->nfds ? G->nfds : 64;
    while (n <= fd) n *= 2;
    fd_slot *f = realloc(G->fds, (size_t)n * sizeof *f);
    if (!f) return NULL;
    memset(f + G->nfds, 0, (size_t)(n - G->nfds) * sizeof *f);
    G->fds = f;
    G->nfds = n;
  }
  return &G->fds[fd];
}

static void unpark(sock_ctx *c) {
  for (sock_ctx **p = &G->parked; *p; p = &(*p)->pnext) {
    if (*p == c) {
      *p = c->pnext;
      break;
    }
  }
  c->pnext = NULL;
  c->parked = 0;
}

static void sock_forget(sock_ctx *c) {
  if (c->parked) unpark(c);
  if (c->prev) c->prev->next = c->next; else G->sockets = c->next;
  if (c->next) c->next->prev = c->prev;
  G->nsockets--;
  if (c->fd < G->nfds && G->fds[c->fd].ctx == c) G->fds[c->fd].ctx = NULL;
  uv_poll_stop(&c->poll);
  opsh_close_free((uv_handle_t *)&c->poll, c);
}

static void on_prepare(uv_prepare_t *h) {
  if (G->due_now) {
    uv_timer_stop(G->timer);
    run_timeouts();
  }
  while (G->parked) sock_forget(G->parked);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  sock_ctx *c = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      curl_multi_assign(G->multi, s, NULL);
      if (s < G->nfds && G->fds[s].owned && !c->parked) {
        c->parked = 1;
        c->pnext = G->parked;
        G->parked = c;
      } else {
        sock_forget(c);
      }
    }
    return 0;
  }
  if (!c) {
    fd_slot *f = slot(s);
    if (!f) return -1;
    c = f->ctx;
    if (c && c->parked) {
      unpark(c);
    } else {
      if (c) sock_forget(c);   /* not reached: a socket curl watches has its socketp */
      c = calloc(1, sizeof *c);
      if (!c) return -1;
      if (uv_poll_init_socket(G->loop, &c->poll, s) != 0) {
        free(c);
        return -1;
      }
      c->poll.data = c;
      c->fd = s;
      c->next = G->sockets;
      if (c->next) c->next->prev = c;
      G->sockets = c;
      G->nsockets++;
      f->ctx = c;
    }
    curl_multi_assign(G->multi, s, c);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  if (events != c->events || !uv_is_active((uv_handle_t *)&c->poll)) {
    c->events = events;
    if (uv_poll_start(&c->poll, events, on_poll) != 0) return -1;   /* curl fails the transfer */
  }
  return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  if (timeout_ms < 0) {
    G->due_now = 0;
    uv_timer_stop(G->timer);
    return 0;
  }
  /* "at once" usually follows a new transfer from a task: the prepare phase of this loop
  ** turn runs it, before the poll; the timer is the fallback */
  if (timeout_ms == 0) G->due_now = 1;
  uv_timer_start(G->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  fd_slot *f = fd >= 0 ? slot(fd) : NULL;
  if (fd >= 0 && !f) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  if (f) f->owned = 1;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int on_closesocket(void *clientp, curl_socket_t fd) {
  if (G && fd >= 0 && fd < G->nfds) {
    if (G->fds[fd].ctx) sock_forget(G->fds[fd].ctx);   /* before the fd number can be reused */
    G->fds[fd].owned = 0;
  }
  return close(fd);
}

/* ---- the pool of easy handles ---- */

static void easy_defaults(CURL *e) {
  curl_easy_setopt(e, CURLOPT_SHARE, G->share);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "opsh/" OPSH_VERSION);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
}

CURL *http_easy_get(void) {
  if (G->npool > 0) return G->pool[--G->npool];   /* has the defaults already */
  CURL *e = curl_easy_init();
  if (e) easy_defaults(e);
  return e;
}

/* back to the pool, reset to the defaults: libcurl before 8.17 counts reconnects of died
** keep-alive connections per handle, not per request, and only a reset clears the count
** (a pooled handle would fail its sixth reconnect ever: "Connection died, tried 5 times") */
static void easy_put(CURL *e) {
  if (G && G->npool < POOL_MAX) {
    curl_easy_reset(e);
    easy_defaults(e);
    G->pool[G->npool++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* ---- transfers ---- */

/* the idle timer: it fires idle_ms after the last activity it knows of; activity since then
** (or the task holding the transfer back: a full stream buffer, a body chunk not yet written)
** moves it on instead of ending the transfer */
static void on_idle(uv_timer_t *t) {
  http_xfer *x = t->data;
  if (x->state != XF_RUNNING) return;
  uint64_t now = uv_now(G->loop);
  if (x->paused || http_upload_paused(x)) x->last_activity = now;
  uint64_t quiet = now - x->last_activity;
  if (quiet < x->idle_ms) {
    uv_timer_start(t, on_idle, x->idle_ms - quiet, 0);
    return;
  }
  x->idle_expired = 1;
  x->result = CURLE_OPERATION_TIMEDOUT;
  if (!x->status) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  http_xfer_release(x);
  http_xfer_notify(x);
}

static void idle_stop(http_xfer *x) {
  uv_timer_t *t = x->idle_timer;
  if (!t) return;
  x->idle_timer = NULL;
  uv_timer_stop(t);
  opsh_close_free((uv_handle_t *)t, t);
}

void http_xfer_activity(http_xfer *x) {
  if (x->idle_timer) x->last_activity = uv_now(G->loop);
}

CURLMcode http_xfer_start(http_xfer *x) {
  if (x->idle_ms > 0 && !x->idle_timer) {
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) return CURLM_OUT_OF_MEMORY;
    uv_timer_init(G->loop, t);
    t->data = x;
    x->idle_timer = t;
    x->last_activity = uv_now(G->loop);
    uv_timer_start(t, on_idle, x->idle_ms, 0);
  }
  CURLMcode rc = curl_multi_add_handle(G->multi, x->easy);
  if (rc != CURLM_OK) {
    idle_stop(x);
    return rc;
  }
  x->state = XF_RUNNING;
  x->prev = NULL;
  x->next = G->running;
  if (x->next) x->next->prev = x;
  G->running = x;
  G->nrunning++;
  return CURLM_OK;
}

static void wipe_slist(struct curl_slist *l) {
  for (struct curl_slist *p = l; p; p = p->next) explicit_bzero(p->data, strlen(p->data));
  curl_slist_free_all(l);
}

void http_xfer_release(http_xfer *x) {
  if (x->state == XF_RUNNING) {
    unlink_running(x);
    if (G) curl_multi_remove_handle(G->multi, x->easy);
    x->state = XF_DONE;
  } else if (x->state == XF_OPENING) {
    x->state = XF_DONE;
  }
  if (x->easy) {
    if (G) easy_put(x->easy); else curl_easy_cleanup(x->easy);
    x->easy = NULL;
  }
  if (x->headers) {
    wipe_slist(x->headers);
    x->headers = NULL;
  }
  idle_stop(x);
  http_upload_detach(x);
}

void http_xfer_unpause(http_xfer *x) {
  if (x->state != XF_RUNNING || !x->easy) return;
  http_xfer_activity(x);
  int mask = (x->paused ? CURLPAUSE_RECV : 0) | (http_upload_paused(x) ? CURLPAUSE_SEND : 0);
  curl_easy_pause(x->easy, mask);   /* may deliver a held chunk at once */
}

void http_xfer_notify(http_xfer *x) {
  if (!x->waiter) return;
  int ready = !http_xfer_pending(x);
  if (!ready) {
    switch (x->waiting_for) {
      case WAIT_HEAD: ready = x->head_done; break;
      case WAIT_DATA: ready = x->body.len > 0; break;
      case WAIT_WRITE: ready = x->feed_buf.len - x->feed_pos < HTTP_FEED_HIGH_WATER; break;
      default: break;
    }
  }
  if (ready) {
    opsh_task *t = x->waiter;
    x->waiter = NULL;
    x->waiting_for = WAIT_NONE;
    opsh_task_wake(t, 0);
  }
}

/* ---- set-up and tear-down ---- */

/* __gc of the registry sentinel: runs when the Lua state closes, before the loop does */
static int global_gc(lua_State *L) {
  if (!G) return 0;
  while (G->running) {
    http_xfer *x = G->running;
    http_xfer_release(x);
    x->state = XF_CLOSED;
    x->waiter = NULL;
  }
  while (G->npool > 0) curl_easy_cleanup(G->pool[--G->npool]);
  curl_multi_cleanup(G->multi);   /* closes cached connections, telling on_socket */
  while (G->sockets) sock_forget(G->sockets);
  if (G->share) curl_share_cleanup(G->share);
  opsh_close_free((uv_handle_t *)G->timer, G->timer);
  opsh_close_free((uv_handle_t *)G->prepare, G->prepare);
  free(G->fds);
  free(G);
  G = NULL;
  return 0;
}

void http_global_init(lua_State *L) {
  if (G) return;
  static int curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) opsh_error(L, "protocol", "libcurl failed to initialise");
    curl_ready = 1;
  }
  http_global *g = calloc(1, sizeof *g);
  uv_timer_t *timer = malloc(sizeof *timer);
  uv_prepare_t *prepare = malloc(sizeof *prepare);
  if (!g || !timer || !prepare) {
    free(g);
    free(timer);
    free(prepare);
    opsh_error(L, "memory", "out of memory");
  }
  g->loop = opsh_loop(L);
  g->multi = curl_multi_init();
  g->share = curl_share_init();
  if (!g->multi || !g->share) {
    if (g->multi) curl_multi_cleanup(g->multi);
    if (g->share) curl_share_cleanup(g->share);
    free(g);
    free(timer);
    free(prepare);
    opsh_error(L, "protocol", "libcurl could not create its multi or share handle");
  }
  /* uv_timer_init and uv_prepare_init cannot fail on a running loop */
  uv_timer_init(g->loop, timer);
  timer->data = timer;
  g->timer = timer;
  uv_prepare_init(g->loop, prepare);
  prepare->data = prepare;
  uv_prepare_start(prepare, on_prepare);
  uv_unref((uv_handle_t *)prepare);
  g->prepare = prepare;
  if (curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
      curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
    /* only a libcurl built without sharing: requests still work, each with its own cache */
    curl_share_cleanup(g->share);
    g->share = NULL;
  }
  curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(g->multi, CURLMOPT_MAX_HOST_CONNECTIONS, DEFAULT_MAX_HOST_CONNECTIONS);
  curl_multi_setopt(g->multi, CURLMOPT_MAXCONNECTS, DEFAULT_MAX_CACHED);
  curl_multi_setopt(g->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  G = g;
  /* a sentinel whose __gc tears the multi handle down when the state closes */
  lua_newuserdatauv(L, 1, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, global_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "opsh.http.global");
}

void http_configure(long max_host, long max_total, long max_cached) {
  if (max_host >= 0) curl_multi_setopt(G->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host);
  if (max_total >= 0) curl_multi_setopt(G->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total);
  if (max_cached >= 0) curl_multi_setopt(G->multi, CURLMOPT_MAXCONNECTS, max_cached);
}

void http_push_stats(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, G ? G->nrunning : 0);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, G ? G->npool : 0);
  lua_setfield(L, -2, "pooled");
  lua_pushinteger(L, G ? G->nsockets : 0);
  lua_setfield(L, -2, "sockets");
}
