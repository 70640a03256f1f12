/*
** pg.h — shared between the parts of opsh._pg: pg.c (connections: connect, the socket
** on the loop, cancel and drain, close), query.c (queries, parameters, typed results,
** errors, notifications) and copy.c (COPY TO STDOUT / FROM STDIN).
**
** A connection (pgconn) is malloc'ed and owned by its userdata (pgud); its uv handles are
** malloc'ed too and freed in their close callbacks. A task waiting on a connection owns a
** pgop userdata on its own stack: the loop callbacks fill it and wake the task, so results
** belong to the task and a cancelled task's results are collected with its stack.
*/
#ifndef opsh_pg_h
#define opsh_pg_h

#include "pq.h"
#include "opsh.h"
#include "buf.h"

#define PG_CONN_META "opsh.pg.conn"
#define PG_OP_META "opsh.pg.op"

enum pg_state {
  PG_CLOSED,      /* PQfinish'ed; only the userdata's close frees the struct */
  PG_CONNECTING,  /* PQconnectPoll in progress */
  PG_IDLE,        /* ready for a query */
  PG_BUSY,        /* a query was sent; collecting its results */
  PG_COPY_OUT,    /* COPY TO STDOUT data flowing */
  PG_COPY_IN,     /* COPY FROM STDIN: the client sends data */
  PG_DRAIN,       /* after a cancelled task: discarding results until the connection is idle */
  PG_BROKEN       /* the connection failed; only close is left */
};

enum pg_optype { OP_CONNECT, OP_RESULT, OP_COPY_READ, OP_FLUSH, OP_NOTIFY, OP_READY };

typedef struct pgop {
  opsh_task *task;     /* NULL once woken or cancelled */
  int type;            /* enum pg_optype */
  int done;            /* the callback finished this operation */
  int closed;          /* the connection was closed while the task waited */
  int timed_out;
  int failed;          /* a connection-level error: err says which, or why_static if err is NULL */
  int nparams;         /* the query's parameters are at stack slots 3..nparams+2 (scrubbing) */
  PGresult *result;    /* the result to hand back: the first error, else the last result */
  char *err;           /* a connection-level error message (malloc'ed, secrets scrubbed) */
  const char *why_static;   /* the message when err could not be allocated */
  PGnotify *notify;
  byte_buf copy;       /* COPY TO STDOUT data read for this call */
  int copy_end;        /* COPY TO STDOUT ended; result holds its final status */
} pgop;

struct pg_cancel_req;

typedef struct pgconn {
  PGconn *pg;
  uv_loop_t *loop;
  uv_poll_t *poll;     /* on fd, NULL before the socket exists */
  int fd;
  int events;          /* events the poll is started with, 0 when stopped */
  int refd;            /* the poll keeps the loop alive */
  uv_timer_t *timer;   /* connect and notification deadlines */
  int state;           /* enum pg_state */
  pgop *op;            /* the waiting task's operation, NULL if none waits */
  int flushing;        /* PQflush returned 1: wait for writable */
  int drain_copy;      /* while draining: inside a COPY TO STDOUT */
  int drain_results_done;
  int rollback_after_drain;
  struct pg_cancel_req *cancel_req;   /* a PQcancel running in the thread pool */
  double timeout;      /* connect timeout, seconds */
  char *notices[16];   /* notices received during the current operation */
  int nnotices;
} pgconn;

/* the userdata; its user value 1 is the password (string or opsh.secret) it connected with, so
** that every error raised on the connection is scrubbed of it */
typedef struct pgud { pgconn *c; } pgud;

/* pg.c */
pgconn *pg_checkconn(lua_State *L, int idx);          /* [-0, +0, v] open, not broken */
void pg_update_poll(pgconn *c);                       /* events and ref for the state */
void pg_start_drain(pgconn *c, int send_cancel);
void pg_op_cancel(void *ud);                          /* opsh_cancel_fn for any pgop wait */
pgop *pg_newop(lua_State *L, pgconn *c, int type);    /* [-0, +1, m] */
void pg_op_finish(pgconn *c);                         /* wake the waiting task */
void pg_fail(pgconn *c, const char *msg);             /* the connection broke */
void pg_op_error(pgop *op, char *msg, const char *fallback);   /* fail op; takes msg (may be NULL) */
char *pg_scrub(PGconn *pg, const char *msg);          /* malloc'ed copy without the password */
/* raises if busy; while a cancelled operation drains, yields and resumes in k(ctx) */
int pg_wait_ready(lua_State *L, pgconn *c, lua_KContext ctx, lua_KFunction k);
void pg_flush(pgconn *c);
void pg_start_timer(pgconn *c, uint64_t ms);
void pg_clear_notices(pgconn *c);

/* query.c */
void pg_result_step(pgconn *c);                       /* PG_BUSY: collect results */
void pg_notify_step(pgconn *c);                       /* PG_IDLE with an OP_NOTIFY waiting */
void pg_push_result(lua_State *L, pgconn *c, PGresult *r);        /* [-0, +1, e] */
void pg_push_error(lua_State *L, PGresult *r);                   /* [-0, +1, m] */
void pg_push_op_error(lua_State *L, pgconn *c, pgop *op, const char *what);  /* [-0, +1, m] */
/* [-0, +1, m] the secrets an error on the connection at ud_idx may carry: its password and the
** opsh.secret values among the n stack slots from first (a list for opsh_scrub_push) */
void pg_push_secrets(lua_State *L, int ud_idx, int first, int n);
/* [-0, +0, m] every string field of the table at idx (and the strings of the list in its field
** `notices`) scrubbed of the secrets in the list at list_idx */
void pg_scrub_fields(lua_State *L, int idx, int list_idx);
/* [-1, +0, v] raise the error on top, scrubbed of the password of the connection at stack slot 1
** and of the secret parameters of op (its nparams slots from 3) */
int pg_raise(lua_State *L, pgop *op);
void pg_query_register(lua_State *L);                 /* [-0, +0, m] methods into the table on top */
int pg_send_k(lua_State *L, int status, lua_KContext ctx);

/* resolve.c */
void pg_resolve_register(lua_State *L);               /* [-0, +0, m] functions into the table on top */

/* copy.c */
void pg_copy_step(pgconn *c);                         /* PG_COPY_OUT with an OP_COPY_READ waiting */
void pg_copy_register(lua_State *L);                  /* [-0, +0, m] methods into the table on top */

#endif
