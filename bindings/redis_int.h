/*
** redis_int.h — internal interface between the parts of opsh._redis: connections, commands
** and replies on hiredis's async API (redis.c), and TLS through an OpenSSL session that
** pumps bytes between hiredis and the server when hiredis has no TLS of its own (redis_tls.c).
** Nothing here is visible outside the module.
*/
#ifndef opsh_redis_int_h
#define opsh_redis_int_h

#include <stdint.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/ssl.h>
#include "opsh.h"

#if HIREDIS_MAJOR >= 1 && defined(OPSH_HIREDIS_SSL)
#define RTLS_NATIVE 1      /* hiredis_ssl does the TLS; redis_tls.c only builds the SSL object */
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

/* Something a task waits for. Its memory goes once it is neither waited for (off the list)
** nor owed a callback by hiredis. */
struct rreq {
  rreq *prev, *next;        /* the connection's waiting list */
  rconn *c;
  opsh_task *task;          /* NULL once woken or cancelled: later replies are dropped */
  int kind;
  int waiting;
  int owed;                 /* hiredis callbacks still to come */
  int n, got;               /* pipeline: size and replies so far; subscribe: confirmations due */
  int ref;                  /* pipeline: stack index of the results table on the task */
  int lost;                 /* a reply came back NULL: the connection went away */
  uint64_t deadline;        /* uv_hrtime() in ms, 0: none */
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
  char why[320];            /* why the connection went down */
};

/* redis.c: requests and waking */
rreq *rreq_new(rconn *c, int kind, opsh_task *t);
void rreq_wait(rreq *r, uint64_t ms);
void rreq_unwait(rreq *r);
void rreq_maybe_free(rreq *r);
void rreq_cancel(void *ud);
void rreq_wake_lost(rreq *r, const redisAsyncContext *ac);
/* [-0, +1, m] the error for a command that cannot get its reply: {kind, message, command, ...} */
void rconn_push_error(lua_State *L, rconn *c, const char *kind, const char *cmd, const char *fmt, ...);
int rconn_results_k(lua_State *L, int status, lua_KContext ctx);
int rconn_connect_k(lua_State *L, int status, lua_KContext ctx);
rconn *rconn_check(lua_State *L, int idx);

/* redis_cmd.c: commands, replies and pub/sub */
extern const luaL_Reg rconn_cmd_methods[];
/* [-0, +1, m] a reply as a Lua value (nested: nil is the null value, errors are objects) */
void rconn_push_reply(lua_State *L, const redisReply *rep, int nested, const char *cmd);
/* [-0, +0, m] bytes of a string, number (slot replaced by its text) or secret; NULL otherwise */
const char *rconn_arg_bytes(lua_State *L, int idx, size_t *len);
void rconn_command_name(char *out, const char *s, size_t len);   /* upper case, <= 31 chars */
int rconn_refused(const char *name);   /* SUBSCRIBE, MONITOR...: not through call/pipeline */
/* [-0, +2, m] nil, {kind="connect", sent=false} */
int rconn_not_ready(lua_State *L, rconn *c, const char *cmd);

/* redis_batch.c: pipelines */
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
