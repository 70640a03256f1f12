/*
** redis.h — internal interface between the parts of opsh._redis: connections on hiredis's
** async API (redis.c), the requests tasks wait for (req.c), commands and pub/sub
** (cmd.c), pipelines (batch.c), replies kept in C for the task (reply.c), and
** TLS through an OpenSSL session that pumps bytes between hiredis and the server when hiredis
** has no TLS of its own (tls.c).
** Nothing here is visible outside the module.
*/
#ifndef opsh_redis_h
#define opsh_redis_h

#include <stdint.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/ssl.h>
#include "opsh.h"
#include "buf.h"

#if HIREDIS_MAJOR >= 1 && defined(OPSH_HIREDIS_SSL)
#define RTLS_NATIVE 1      /* hiredis_ssl does the TLS; tls.c only builds the SSL object */
#else
#define RTLS_NATIVE 0
#endif

typedef struct rconn rconn;
typedef struct rtls rtls;
typedef struct rreq rreq;
typedef struct rmsg rmsg;

#define REDIS_CONN_META "opsh.redis.connection"

enum rconn_state { C_RESOLVING, C_TLS, C_CONNECTING, C_READY, C_DOWN };
enum rreq_kind { REQ_CONNECT, REQ_CALL, REQ_PIPE, REQ_SUB, REQ_MSG };

/* What a request ended with, kept in C until the task resumes (the connection may be gone by
** then, so the fields are copies). */
typedef struct rerr {
  int sent;                 /* -1: the error has no `sent` field */
  int port;
  char kind[16];
  char cmd[32];
  char host[256];
  char message[840];
} rerr;

/* Something a task waits for. Loop callbacks never touch Lua: they keep the outcome here (replies
** serialized in `out`, or `err`) and wake the task with no values; the continuation, running in
** the task, turns it into Lua values. The memory goes once the Lua box let go of it, it is off the
** waiting list and hiredis owes it no callback. */
struct rreq {
  rreq *prev, *next;        /* the connection's waiting list */
  rconn *c;
  opsh_task *task;          /* NULL once woken or cancelled: later replies are dropped */
  struct rbox *box;         /* the userdata on the task's stack that owns it; NULL once let go */
  int kind;
  int waiting;
  int queueing;             /* pipeline: commands are being handed to hiredis */
  int owed;                 /* hiredis callbacks still to come */
  int n, got;               /* pipeline: size and replies so far; subscribe: confirmations due */
  int lost;                 /* a reply came back NULL: the connection went away */
  int oom;                  /* the outcome could not be kept: out of memory */
  int nomsg;                /* message: the wait ended without one */
  uint64_t deadline;        /* uv_hrtime() in ms, 0: none */
  byte_buf out;             /* replies so far, in the rreply_save format */
  rerr *err;
  char cmd[32];             /* the command name (never its arguments), for errors */
};

struct rmsg {               /* a pub/sub message waiting to be read */
  rmsg *next;
  size_t patlen, chanlen, len;   /* patlen is (size_t)-1 for a plain message */
  char data[];              /* pattern, channel, payload */
};

struct rconn {
  lua_State *L;             /* the main thread */
  uv_loop_t *loop;
  redisAsyncContext *ac;    /* NULL while down */
  uv_timer_t timer;         /* deadlines of the waiting requests; the memory goes with it */
  uint64_t due;             /* when the timer fires */
  uv_getaddrinfo_t *gai;
  struct addrinfo *ai, *ai_next;
  int state;
  int closed;               /* the Lua handle let go; freed once ac is gone */
  int subscribed;
  char host[256], servername[256];
  char addr[64];            /* the address in use */
  int port;
  uint64_t timeout_ms, connect_timeout_ms;
  int tls, verify;
  char *ca;
  size_t ca_len;
  rtls *pump;
  rreq *connecting;
  rreq *head, *tail;        /* requests tasks wait for */
  rreq *subwait, *msgwait;
  rmsg *mhead, *mtail;
  size_t dropped;           /* messages lost to out of memory, reported by the next read */
  char why[320];            /* why the connection went down */
};

/* redis.c: connecting and closing */
/* stop connecting or drop the connection; the handle stays usable for a new connect */
void rconn_teardown(rconn *c);

/* req.c: requests and waking */
/* [-0, +1, m] a new request owned by a box pushed on L (raises when out of memory) */
rreq *rreq_push(lua_State *L, rconn *c, int kind, opsh_task *t);
/* [-0, +0, v] the request of the box at idx, after the task resumed */
rreq *rreq_take(lua_State *L, int idx);
/* [-0, +0, -] the box at idx lets go of its request */
void rreq_release(lua_State *L, int idx);
void rreq_wait(rreq *r, uint64_t ms);
void rreq_unwait(rreq *r);
void rreq_maybe_free(rreq *r);
void rreq_cancel(void *ud);
/* the outcome is in r: wake its task (no values) */
void rreq_done(rreq *r);
/* the request failed: keep {kind, message, ...} for the task and wake it */
void rreq_fail(rreq *r, const char *kind, const char *fmt, ...);
void rreq_wake_lost(rreq *r, const redisAsyncContext *ac);
/* [-0, +1, m] the kept error as an opsh.error */
void rreq_push_error(lua_State *L, const rreq *r);
/* [-0, +2, m] nil and the kept error, the box at `box` released: a continuation's failed outcome */
int rreq_return_error(lua_State *L, int box, const rreq *r);
/* [-0, +1, m] the error for a command that cannot get its reply: {kind, message, command, ...} */
void rconn_push_error(lua_State *L, rconn *c, const char *kind, const char *cmd, const char *fmt, ...);
rconn *rconn_check(lua_State *L, int idx);
rconn *rconn_get(lua_State *L, int idx);   /* NULL once closed */

/* reply.c: replies kept in C between the loop callback and the task */
/* append rep to b; 0, or -1 when out of memory */
int rreply_save(byte_buf *b, const redisReply *rep);
/* is the saved reply at *p an error reply? */
int rreply_is_error(const char *p);
/* [-0, +1, m] the saved reply at *p as a Lua value (see rconn_push_reply), *p moved past it */
void rreply_push(lua_State *L, const char **p, int nested, const char *cmd);

/* cmd.c: commands, replies and pub/sub */
extern const luaL_Reg rconn_cmd_methods[];
/* [-0, +0, m] bytes of a string, number (slot replaced by its text) or secret; NULL otherwise */
const char *rconn_arg_bytes(lua_State *L, int idx, size_t *len);
void rconn_command_name(char *out, const char *s, size_t len);   /* upper case, <= 31 chars */
int rconn_refused(const char *name);   /* SUBSCRIBE, MONITOR...: not through call/pipeline */
/* [-0, +2, m] nil, {kind="connect", sent=false} */
int rconn_not_ready(lua_State *L, rconn *c, const char *cmd);

/* batch.c: pipelines */
extern const luaL_Reg rconn_batch_methods[];
int rconn_batch_new(lua_State *L);
void rconn_push_null(lua_State *L);
void rconn_set_null(lua_State *L, int idx);
void rconn_drop_messages(rconn *c);

/* [-0, +0, -] a client context that verifies against ca (PEM text or a file path; NULL: the
** system store), TLS 1.2 at least; NULL with a message in err */
SSL_CTX *rtls_ctx_new(const char *ca, size_t ca_len, char *err, size_t errlen);
/* an SSL client session for servername: SNI for names, and unless verify is 0, the chain
** and the name or IP address are checked during the handshake */
SSL *rtls_ssl_new(SSL_CTX *ctx, const char *servername, int verify, char *err, size_t errlen);
/* text for a failed handshake: the verification result, else OpenSSL's error queue */
void rtls_describe_failure(SSL *ssl, const char *fallback, char *out, size_t outlen);

#if !RTLS_NATIVE
/* Connect TCP to addr and run the handshake on ssl (owned from now on). The owner hears of
** the outcome through rconn_tls_up / rconn_tls_failed. */
rtls *rtls_start(uv_loop_t *loop, const struct sockaddr *addr, SSL *ssl, rconn *owner);
/* Start pumping between the TLS session and the local stream socket fd (taken over). */
int rtls_attach(rtls *t, int fd);
/* Stop everything at once; idempotent; the memory goes with the last close callback. */
void rtls_close(rtls *t);

/* called by the pump */
void rconn_tls_up(rconn *c);
void rconn_tls_failed(rconn *c, const char *kind, const char *why);
void rconn_tls_broken(rconn *c, const char *why);
#endif

#endif
