/*
** copy.c — opsh._pg COPY: data of COPY ... TO STDOUT read in bounded batches (the socket is
** only read while a task asks for more, so a slow consumer holds the server back instead of
** filling memory), and COPY ... FROM STDIN written with flow control.
*/
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include "pg.h"

#define COPY_BATCH (256 * 1024)

void pg_copy_step(pgconn *c) {
  pgop *op = c->op;
  while (op->copy.len < COPY_BATCH) {
    char *buf;
    int n = PQgetCopyData(c->pg, &buf, 1);
    if (n > 0) {
      int bad = byte_buf_add(&op->copy, buf, (size_t)n);
      PQfreemem(buf);
      if (bad) {
        pg_start_drain(c, 1);
        pg_op_error(op, NULL, "out of memory reading COPY data");
        pg_op_finish(c);
        return;
      }
      continue;
    }
    if (n == 0) break;
    /* -1: the COPY ended (-2: it failed); its final status follows as a result */
    op->copy_end = 1;
    op->type = OP_RESULT;
    c->state = PG_BUSY;
    pg_result_step(c);
    return;
  }
  if (op->copy.len > 0) pg_op_finish(c);
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  pgop *op = lua_touserdata(L, 2);
  pgud *u = lua_touserdata(L, 1);
  if (!u->c || op->closed || op->failed) {
    pg_push_op_error(L, u->c, op, "a COPY");
    return pg_raise(L, op);
  }
  if (op->copy_end && op->result) {
    ExecStatusType st = PQresultStatus(op->result);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      pg_push_error(L, op->result);
      return pg_raise(L, op);
    }
  }
  if (op->copy.len > 0) lua_pushlstring(L, op->copy.data, op->copy.len);
  else lua_pushnil(L);
  if (op->copy_end && op->result) pg_push_result(L, u->c, op->result);
  else lua_pushnil(L);
  return 2;
}

/* conn:_copy_read() -> data|nil, result|nil: data that arrived (up to a batch), and the final
** result once the COPY ended */
static int conn_copy_read(lua_State *L) {
  pgconn *c = pg_checkconn(L, 1);
  opsh_task_check(L, "pg conn:copy_out");
  if (c->op) return opsh_error(L, "usage", "the pg connection is busy with another operation");
  if (c->state != PG_COPY_OUT) return opsh_error(L, "usage", "no COPY TO STDOUT is in progress");
  lua_settop(L, 1);
  pgop *op = pg_newop(L, c, OP_COPY_READ);
  opsh_task *me = op->task;
  op->task = NULL;   /* nothing to wake while we read what is already there */
  if (!PQconsumeInput(c->pg)) pg_fail(c, PQerrorMessage(c->pg));
  else pg_copy_step(c);
  if (op->done) return read_k(L, LUA_OK, 0);
  op->task = me;
  pg_update_poll(c);
  return opsh_yield(L, pg_op_cancel, c, 0, read_k);
}

static int flush_k(lua_State *L, int status, lua_KContext ctx) {
  pgop *op = lua_touserdata(L, lua_gettop(L));
  pgud *u = lua_touserdata(L, 1);
  if (!u->c || op->closed || op->failed) {
    pg_push_op_error(L, u->c, op, "a COPY");
    return pg_raise(L, op);
  }
  return 0;
}

/* [-0, +0, y] wait until libpq's output buffer went out */
static int wait_flushed(lua_State *L, pgconn *c) {
  if (!c->flushing) return 0;
  pg_newop(L, c, OP_FLUSH);
  pg_update_poll(c);
  return opsh_yield(L, pg_op_cancel, c, 0, flush_k);
}

/* the final status of a COPY FROM STDIN, as a query result or the server's error */
static int collect_final(lua_State *L, pgconn *c) {
  c->state = PG_BUSY;
  pgop *op = pg_newop(L, c, OP_RESULT);
  opsh_task *me = op->task;
  op->task = NULL;
  pg_flush(c);
  if (c->state == PG_BUSY && !c->flushing) pg_result_step(c);
  lua_KContext ctx = (lua_KContext)lua_gettop(L) << 2;   /* MODE_QUERY */
  if (op->done) return pg_send_k(L, LUA_OK, ctx);
  op->task = me;
  pg_update_poll(c);
  return opsh_yield(L, pg_op_cancel, c, ctx, pg_send_k);
}

static int conn_copy_write(lua_State *L);

static int write_retry_k(lua_State *L, int status, lua_KContext ctx) {
  flush_k(L, status, ctx);
  lua_settop(L, 2);
  return conn_copy_write(L);
}

/* conn:_copy_write(data): send COPY FROM STDIN data; waits while the socket is full */
static int conn_copy_write(lua_State *L) {
  pgconn *c = pg_checkconn(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len <= INT_MAX, 2, "chunk too large");
  opsh_task_check(L, "pg conn:copy_in");
  if (c->op) return opsh_error(L, "usage", "the pg connection is busy with another operation");
  if (c->state != PG_COPY_IN) return opsh_error(L, "usage", "no COPY FROM STDIN is in progress");
  lua_settop(L, 2);
  int r = PQputCopyData(c->pg, data, (int)len);
  if (r < 0) return collect_final(L, c);   /* the server ended the COPY: report its error */
  if (r == 0) {                            /* libpq's buffer is full: flush, then again */
    pg_flush(c);
    if (c->state == PG_BROKEN) return opsh_error(L, "pg", "connection lost");
    pg_newop(L, c, OP_FLUSH);
    pg_update_poll(c);
    return opsh_yield(L, pg_op_cancel, c, 0, write_retry_k);
  }
  pg_flush(c);
  if (c->state == PG_BROKEN) return opsh_error(L, "pg", "connection lost");
  return wait_flushed(L, c);
}

/* conn:_copy_end([error_message]) -> result: ends COPY FROM STDIN (fails it with the message) */
static int conn_copy_end(lua_State *L) {
  pgconn *c = pg_checkconn(L, 1);
  const char *errmsg = luaL_optstring(L, 2, NULL);
  opsh_task_check(L, "pg conn:copy_in");
  if (c->op) return opsh_error(L, "usage", "the pg connection is busy with another operation");
  if (c->state != PG_COPY_IN) return opsh_error(L, "usage", "no COPY FROM STDIN is in progress");
  lua_settop(L, 2);
  if (PQputCopyEnd(c->pg, errmsg) == 0) {
    /* nonblocking mode and a full buffer: flush it and try again */
    pg_flush(c);
    if (c->state == PG_BROKEN || PQputCopyEnd(c->pg, errmsg) == 0) {
      pg_fail(c, "cannot end the COPY: the connection does not drain");
      return opsh_error(L, "pg", "cannot end the COPY");
    }
  }
  return collect_final(L, c);
}

static const luaL_Reg copy_methods[] = {
  {"_copy_read", conn_copy_read},
  {"_copy_write", conn_copy_write},
  {"_copy_end", conn_copy_end},
  {NULL, NULL}
};

void pg_copy_register(lua_State *L) { luaL_setfuncs(L, copy_methods, 0); }
