/*
** query.c — opsh._pg queries: $n parameters only (PQsendQueryParams; conn:exec uses the
** simple protocol and takes none), results as records with values typed by column OID,
** errors from PQresultErrorField, and LISTEN/NOTIFY notifications.
*/
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include "pg.h"

/* PostgreSQL keeps no value of 1 GiB or more (MaxAllocSize), and libpq's lengths are ints */
#define PG_MAX_VALUE ((size_t)1 << 30)

/* type OIDs (catalog/pg_type_d.h, stable across versions) */
enum {
  BOOLOID = 16, BYTEAOID = 17, INT8OID = 20, INT2OID = 21, INT4OID = 23, OIDOID = 26, JSONOID = 114,
  FLOAT4OID = 700, FLOAT8OID = 701, DATEOID = 1082, TIMESTAMPOID = 1114, TIMESTAMPTZOID = 1184,
  NUMERICOID = 1700, JSONBOID = 3802
};

static const struct { Oid oid; const char *name; } type_names[] = {
  {16, "bool"}, {17, "bytea"}, {18, "char"}, {19, "name"}, {20, "int8"}, {21, "int2"}, {23, "int4"},
  {25, "text"}, {26, "oid"}, {114, "json"}, {142, "xml"}, {650, "cidr"}, {700, "float4"},
  {701, "float8"}, {790, "money"}, {829, "macaddr"}, {869, "inet"}, {1000, "_bool"}, {1005, "_int2"},
  {1007, "_int4"}, {1009, "_text"}, {1016, "_int8"}, {1042, "bpchar"}, {1043, "varchar"},
  {1082, "date"}, {1083, "time"}, {1114, "timestamp"}, {1184, "timestamptz"}, {1186, "interval"},
  {1266, "timetz"}, {1560, "bit"}, {1562, "varbit"}, {1700, "numeric"}, {2249, "record"},
  {2278, "void"}, {2950, "uuid"}, {3220, "pg_lsn"}, {3802, "jsonb"}, {0, NULL}
};

static const char *type_name(Oid oid) {
  for (int i = 0; type_names[i].name; i++)
    if (type_names[i].oid == oid) return type_names[i].name;
  return NULL;
}

/* ---- errors ---- */

static void set_field(lua_State *L, const PGresult *r, int code, const char *name) {
  const char *v = PQresultErrorField(r, code);
  if (v) opsh_error_setstr(L, name, v);
}

void pg_push_error(lua_State *L, PGresult *r) {
  const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (primary) {
    opsh_error_push(L, "pg", "%s", primary);
  } else {
    char *m = pg_scrub(NULL, PQresultErrorMessage(r));
    opsh_error_push(L, "pg", "%s", m && *m ? m : "query failed");
    free(m);
  }
  set_field(L, r, PG_DIAG_SQLSTATE, "sqlstate");
  set_field(L, r, PG_DIAG_SQLSTATE, "code");
  set_field(L, r, PG_DIAG_SEVERITY_NONLOCALIZED, "severity");
  set_field(L, r, PG_DIAG_MESSAGE_DETAIL, "detail");
  set_field(L, r, PG_DIAG_MESSAGE_HINT, "hint");
  set_field(L, r, PG_DIAG_CONTEXT, "context");
  set_field(L, r, PG_DIAG_SCHEMA_NAME, "schema");
  set_field(L, r, PG_DIAG_TABLE_NAME, "table");
  set_field(L, r, PG_DIAG_COLUMN_NAME, "column");
  set_field(L, r, PG_DIAG_CONSTRAINT_NAME, "constraint");
  const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
  if (pos) opsh_error_setint(L, "position", atoi(pos));
}

void pg_push_op_error(lua_State *L, pgconn *c, pgop *op, const char *what) {
  if (op->closed || !c) {
    opsh_error_push(L, "pg", "the connection was closed during %s", what);
  } else {
    opsh_error_push(L, "pg", "%s", op->err ? op->err : op->why_static ? op->why_static : "connection lost");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "broken");
  }
}

void pg_push_secrets(lua_State *L, int ud_idx, int first, int n) {
  ud_idx = lua_absindex(L, ud_idx);
  lua_createtable(L, n + 1, 0);
  int k = 0;
  if (lua_getiuservalue(L, ud_idx, 1) != LUA_TNONE && !lua_isnil(L, -1)) lua_rawseti(L, -2, ++k);
  else lua_pop(L, 1);
  for (int i = 0; i < n; i++) {
    if (!opsh_is_secret(L, first + i)) continue;
    lua_pushvalue(L, first + i);
    lua_rawseti(L, -2, ++k);
  }
}

void pg_scrub_fields(lua_State *L, int idx, int list_idx) {
  idx = lua_absindex(L, idx);
  list_idx = lua_absindex(L, list_idx);
  if (!lua_istable(L, idx) || luaL_len(L, list_idx) == 0) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {                  /* key, value */
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len;
      const char *v = lua_tolstring(L, -1, &len);
      opsh_scrub_push(L, v, len, list_idx);   /* key, value, scrubbed */
      lua_pushvalue(L, -3);
      lua_insert(L, -2);                      /* key, value, key, scrubbed */
      lua_rawset(L, idx);                     /* an existing field: lua_next may go on */
    }
    lua_pop(L, 1);
  }
  if (lua_getfield(L, idx, "notices") == LUA_TTABLE) pg_scrub_fields(L, -1, list_idx);
  lua_pop(L, 1);
}

/* ---- typed values ---- */

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* [-0, +1, m] bytea in hex output format (\x...) as raw bytes */
static void push_bytea(lua_State *L, const char *v, size_t len) {
  if (len < 2 || v[0] != '\\' || v[1] != 'x' || (len - 2) % 2 != 0) {
    lua_pushlstring(L, v, len);
    return;
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (len - 2) / 2);
  size_t o = 0;
  for (size_t i = 2; i + 1 < len; i += 2) {
    int hi = hexval(v[i]), lo = hexval(v[i + 1]);
    if (hi < 0 || lo < 0) {
      luaL_pushresultsize(&b, 0);
      lua_pop(L, 1);
      lua_pushlstring(L, v, len);
      return;
    }
    out[o++] = (char)(hi << 4 | lo);
  }
  luaL_pushresultsize(&b, o);
}

/* [-0, +1, m] ISO "2024-05-01 10:00:00.5+02" as RFC 3339 "2024-05-01T10:00:00.5+02:00" ("Z" for UTC);
** values that are not plain (infinity, BC years) stay as the server wrote them */
static void push_timestamp(lua_State *L, const char *v, size_t len, int tz) {
  char out[64];
  if (len < 19 || len >= sizeof out - 4 || v[10] != ' ' || (len > 3 && memcmp(v + len - 3, " BC", 3) == 0)) {
    lua_pushlstring(L, v, len);
    return;
  }
  memcpy(out, v, len);
  out[10] = 'T';
  size_t n = len;
  if (tz) {
    /* the offset follows the seconds and their fraction: +HH, +HH:MM or +HH:MM:SS */
    size_t i = 19;
    if (i < len && v[i] == '.')
      for (i++; i < len && v[i] >= '0' && v[i] <= '9'; i++) {}
    size_t off = len - i;
    if (off == 3 && memcmp(v + i + 1, "00", 2) == 0) {
      out[i] = 'Z';
      n = i + 1;
    } else if (off == 3) {
      memcpy(out + len, ":00", 3);
      n = len + 3;
    }
  }
  lua_pushlstring(L, out, n);
}

/* [-0, +1, e] one non-NULL value of type oid; json columns go through the decoder at decidx */
static void push_value(lua_State *L, Oid oid, const char *v, size_t len, int decidx, int iso) {
  switch (oid) {
    case BOOLOID:
      lua_pushboolean(L, v[0] == 't');
      return;
    case INT2OID: case INT4OID: case OIDOID:
      lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10));
      return;
    case INT8OID: {
      long long x = strtoll(v, NULL, 10);
      if (x >= -9007199254740992LL && x <= 9007199254740992LL) lua_pushinteger(L, (lua_Integer)x);
      else lua_pushlstring(L, v, len);
      return;
    }
    case FLOAT4OID: case FLOAT8OID:
      lua_pushnumber(L, (lua_Number)strtod(v, NULL));
      return;
    case JSONOID: case JSONBOID:
      lua_pushvalue(L, decidx);
      lua_pushlstring(L, v, len);
      lua_call(L, 1, 1);
      return;
    case BYTEAOID:
      push_bytea(L, v, len);
      return;
    case TIMESTAMPOID: case TIMESTAMPTZOID:
      if (iso) {
        push_timestamp(L, v, len, oid == TIMESTAMPTZOID);
        return;
      }
      break;
  }
  lua_pushlstring(L, v, len);   /* numeric, text, date, uuid, intervals, arrays, ... */
}

void pg_push_result(lua_State *L, pgconn *c, PGresult *r) {
  int nrows = PQntuples(r), ncols = PQnfields(r);
  luaL_checkstack(L, ncols + 8, "too many columns");
  lua_createtable(L, nrows, 5);
  int res = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "opsh.pg.null");
  int nullidx = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "opsh.pg.decode");
  int decidx = lua_gettop(L);
  /* timestamps are rewritten only from ISO output (a script may SET DateStyle) */
  const char *ds = PQparameterStatus(c->pg, "DateStyle");
  int iso = ds && strncmp(ds, "ISO", 3) == 0;
  /* column metadata, and the names on the stack for the rows */
  lua_createtable(L, ncols, 0);
  for (int j = 0; j < ncols; j++) {
    Oid oid = PQftype(r, j);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, PQfname(r, j));
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)oid);
    lua_setfield(L, -2, "type");
    const char *tn = type_name(oid);
    if (tn) {
      lua_pushstring(L, tn);
      lua_setfield(L, -2, "type_name");
    }
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, res, "columns");
  int names = lua_gettop(L) + 1;
  for (int j = 0; j < ncols; j++) lua_pushstring(L, PQfname(r, j));
  for (int i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncols);
    for (int j = 0; j < ncols; j++) {
      lua_pushvalue(L, names + j);
      if (PQgetisnull(r, i, j)) lua_pushvalue(L, nullidx);
      else push_value(L, PQftype(r, j), PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j), decidx, iso);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, res, i + 1);
  }
  lua_settop(L, res);
  lua_pushstring(L, PQcmdStatus(r));
  lua_setfield(L, res, "command");
  const char *tuples = PQcmdTuples(r);
  if (tuples && *tuples) {
    lua_pushinteger(L, (lua_Integer)strtoll(tuples, NULL, 10));
    lua_setfield(L, res, "affected");
  }
  if (c->nnotices > 0) {
    lua_createtable(L, c->nnotices, 0);
    for (int i = 0; i < c->nnotices; i++) {
      lua_pushstring(L, c->notices[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, res, "notices");
    pg_clear_notices(c);
  }
}

/* ---- sending ---- */

/* [-0, +0, v] a value libpq's int lengths and the server can take */
static void check_size(lua_State *L, int i, size_t len) {
  if (len >= PG_MAX_VALUE)
    opsh_error(L, "usage", "parameter $%d is %d MiB: PostgreSQL takes values under 1 GiB (use COPY or "
               "split the value)", i + 1, (int)(len >> 20));
}

/* [-0, +0, e] every parameter at first..first+n-1 as text (or bytes) for libpq, in place:
** numbers become strings, tables go through the JSON encoder, nil and json.null are NULL,
** secrets are sent without becoming Lua strings */
static void prepare_params(lua_State *L, int first, int n, const char **vals, int *lens, int *fmts) {
  lua_getfield(L, LUA_REGISTRYINDEX, "opsh.pg.null");
  int nullidx = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    size_t len = 0;
    lens[i] = 0;
    fmts[i] = 0;
    vals[i] = NULL;
    switch (lua_type(L, idx)) {
      case LUA_TNIL: case LUA_TNONE:
        continue;
      case LUA_TBOOLEAN:
        vals[i] = lua_toboolean(L, idx) ? "t" : "f";
        continue;
      case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
          lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        } else {
          double d = lua_tonumber(L, idx);
          char buf[64];
          if (isnan(d)) strcpy(buf, "NaN");
          else if (isinf(d)) strcpy(buf, d > 0 ? "Infinity" : "-Infinity");
          else snprintf(buf, sizeof buf, "%.17g", d);
          lua_pushstring(L, buf);
        }
        lua_replace(L, idx);
        break;
      case LUA_TSTRING:
        break;
      case LUA_TTABLE:
        if (lua_rawequal(L, idx, nullidx)) continue;
        lua_getfield(L, LUA_REGISTRYINDEX, "opsh.pg.encode");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        if (lua_type(L, -1) != LUA_TSTRING) opsh_error(L, "json", "the JSON encoder did not return a string");
        lua_replace(L, idx);
        break;
      default:
        if (lua_rawequal(L, idx, nullidx)) continue;
        if (opsh_is_secret(L, idx)) {
          vals[i] = opsh_secret_check(L, idx, &len);
          check_size(L, i, len);
          lens[i] = (int)len;
          fmts[i] = memchr(vals[i], '\0', len) != NULL;
          continue;
        }
        luaL_argerror(L, idx - 1, "nil, boolean, number, string, table or secret expected");
    }
    vals[i] = lua_tolstring(L, idx, &len);
    check_size(L, i, len);
    lens[i] = (int)len;
    /* text parameters end at a NUL byte: a string holding one goes in binary format, which
    ** for bytea is the bytes themselves (text refuses a NUL byte in any format) */
    fmts[i] = memchr(vals[i], '\0', len) != NULL;
  }
  lua_settop(L, nullidx - 1);
}

enum { MODE_QUERY, MODE_EXEC, MODE_COPY };

static int send_start(lua_State *L, int mode);

static int ready_k(lua_State *L, int status, lua_KContext ctx) {
  lua_settop(L, (int)(ctx >> 2));
  return send_start(L, (int)(ctx & 3));
}

/* the first of the n parameters from first that holds a NUL byte (1-based), or 0 */
static int nul_param(lua_State *L, int first, int n) {
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *v = NULL;
    if (lua_type(L, first + i) == LUA_TSTRING) v = lua_tolstring(L, first + i, &len);
    else if (opsh_is_secret(L, first + i)) v = opsh_secret_check(L, first + i, &len);
    if (v && memchr(v, '\0', len)) return i + 1;
  }
  return 0;
}

int pg_raise(lua_State *L, pgop *op) {
  pg_push_secrets(L, 1, 3, op->nparams);
  pg_scrub_fields(L, -2, -1);
  lua_pop(L, 1);
  return lua_error(L);
}

int pg_send_k(lua_State *L, int status, lua_KContext ctx) {
  int mode = (int)(ctx & 3), opidx = (int)(ctx >> 2);
  pgop *op = lua_touserdata(L, opidx);
  pgud *u = lua_touserdata(L, 1);
  pgconn *c = u->c;
  if (!c || op->closed || op->failed) {
    pg_push_op_error(L, c, op, "a query");
    return pg_raise(L, op);
  }
  PGresult *r = op->result;
  if (!r) return opsh_error(L, "pg", "the server returned no result");
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
    pg_push_error(L, r);
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int nul = code && strcmp(code, "22021") == 0 ? nul_param(L, 3, op->nparams) : 0;
    if (nul) {   /* the server cannot say which value it was */
      lua_getfield(L, -1, "message");
      lua_pushfstring(L, "%s (parameter $%d holds a NUL byte, which PostgreSQL text cannot store: send bytes "
                      "to a bytea column, or encode them)", lua_tostring(L, -1), nul);
      lua_setfield(L, -3, "message");
      lua_pop(L, 1);
    }
    return pg_raise(L, op);
  }
  if (st == PGRES_COPY_OUT || st == PGRES_COPY_IN) {
    if (mode != MODE_COPY) {
      pg_start_drain(c, st == PGRES_COPY_OUT);
      return opsh_error(L, "usage", "COPY ... TO STDOUT / FROM STDIN goes through conn:copy_out or conn:copy_in");
    }
    lua_pushstring(L, st == PGRES_COPY_OUT ? "out" : "in");
    return 1;
  }
  if (mode == MODE_COPY) return opsh_error(L, "usage", "the statement is not a COPY ... TO STDOUT / FROM STDIN");
  pg_push_result(L, c, r);
  PQclear(op->result);
  op->result = NULL;
  if (lua_getfield(L, -1, "notices") == LUA_TTABLE) {   /* RAISE NOTICE may echo a secret */
    pg_push_secrets(L, 1, 3, op->nparams);
    pg_scrub_fields(L, -2, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

/* the stack: conn, sql, params... */
static int send_start(lua_State *L, int mode) {
  pgconn *c = pg_checkconn(L, 1);
  size_t sqllen;
  const char *sql = luaL_checklstring(L, 2, &sqllen);
  luaL_argcheck(L, strlen(sql) == sqllen, 2, "SQL must not contain NUL bytes");
  opsh_task_check(L, mode == MODE_EXEC ? "pg conn:exec" : "pg conn:query");
  int top = lua_gettop(L);
  int n = top - 2;
  if (n > 65535) return opsh_error(L, "usage", "a query takes at most 65535 parameters");
  if (mode == MODE_EXEC && n > 0)
    return opsh_error(L, "usage", "conn:exec takes no parameters (use conn:query with $1..$n)");
  pg_wait_ready(L, c, (lua_KContext)top << 2 | mode, ready_k);   /* waits while a cancelled query drains */
  const char *svals[16];
  int slens[16], sfmts[16];
  const char **vals = svals;
  int *lens = slens, *fmts = sfmts;
  if (n > 16) {
    char *mem = lua_newuserdatauv(L, (size_t)n * (sizeof *vals + 2 * sizeof(int)), 0);
    vals = (const char **)mem;
    lens = (int *)(mem + (size_t)n * sizeof *vals);
    fmts = lens + n;
  }
  prepare_params(L, 3, n, vals, lens, fmts);
  pg_clear_notices(c);
  int ok = mode == MODE_EXEC ? PQsendQuery(c->pg, sql)
                             : PQsendQueryParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
  if (!ok) {
    char *m = pg_scrub(c->pg, PQerrorMessage(c->pg));
    opsh_error_push(L, "pg", "%s", m ? m : "cannot send the query");
    free(m);
    if (PQstatus(c->pg) == CONNECTION_BAD) pg_fail(c, "connection lost");
    return lua_error(L);
  }
  c->state = PG_BUSY;
  pg_newop(L, c, OP_RESULT)->nparams = n;
  pg_flush(c);
  return opsh_yield(L, pg_op_cancel, c, (lua_KContext)lua_gettop(L) << 2 | mode, pg_send_k);
}

void pg_result_step(pgconn *c) {
  pgop *op = c->op;
  while (!PQisBusy(c->pg)) {
    PGresult *r = PQgetResult(c->pg);
    if (!r) {
      c->state = PG_IDLE;
      pg_op_finish(c);
      return;
    }
    ExecStatusType st = PQresultStatus(r);
    int copy = st == PGRES_COPY_OUT || st == PGRES_COPY_IN;
    if (!op) {
      PQclear(r);
    } else if (op->result && !copy && (PQresultStatus(op->result) == PGRES_FATAL_ERROR)) {
      PQclear(r);   /* the first error is the one to report */
    } else {
      if (op->result) PQclear(op->result);
      op->result = r;
    }
    if (copy) {
      c->state = st == PGRES_COPY_OUT ? PG_COPY_OUT : PG_COPY_IN;
      pg_op_finish(c);
      return;
    }
  }
}

/* conn:query(sql, ...) -> result */
static int conn_query(lua_State *L) { return send_start(L, MODE_QUERY); }

/* conn:exec(sql) -> result of the last statement */
static int conn_exec(lua_State *L) { return send_start(L, MODE_EXEC); }

/* conn:_copy(sql) -> "out" | "in": the connection is in COPY mode */
static int conn_copy(lua_State *L) { return send_start(L, MODE_COPY); }

/* ---- notifications ---- */

void pg_notify_step(pgconn *c) {
  PGnotify *n = PQnotifies(c->pg);
  if (!n) return;
  c->op->notify = n;
  pg_op_finish(c);
}

/* [-0, +1, m] */
static void push_notify(lua_State *L, PGnotify *n) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, n->relname);
  lua_setfield(L, -2, "channel");
  lua_pushstring(L, n->extra);
  lua_setfield(L, -2, "payload");
  lua_pushinteger(L, n->be_pid);
  lua_setfield(L, -2, "pid");
}

static int notify_k(lua_State *L, int status, lua_KContext ctx) {
  pgop *op = lua_touserdata(L, (int)ctx);
  pgud *u = lua_touserdata(L, 1);
  if (!u->c || op->closed || op->failed) {
    pg_push_op_error(L, u->c, op, "a wait for notifications");
    return pg_raise(L, op);
  }
  if (!op->notify) return 0;
  push_notify(L, op->notify);
  return 1;
}

static int conn_wait_notification(lua_State *L);

static int notify_ready_k(lua_State *L, int status, lua_KContext ctx) {
  lua_settop(L, 2);
  return conn_wait_notification(L);
}

/* conn:_wait_notification(timeout|nil) -> {channel, payload, pid} | nil when the time is up */
static int conn_wait_notification(lua_State *L) {
  pgconn *c = pg_checkconn(L, 1);
  uint64_t timeout_ms = lua_isnoneornil(L, 2) ? OPSH_FOREVER
                                              : opsh_checkduration(L, 2, "pg notification wait");
  opsh_task_check(L, "pg notifications");
  lua_settop(L, 2);
  pg_wait_ready(L, c, 0, notify_ready_k);
  if (!PQconsumeInput(c->pg)) {
    pg_fail(c, PQerrorMessage(c->pg));
    return opsh_error(L, "pg", "connection lost");
  }
  PGnotify *n = PQnotifies(c->pg);
  if (n) {
    push_notify(L, n);
    PQfreemem(n);
    return 1;
  }
  if (timeout_ms == 0) return 0;
  pg_newop(L, c, OP_NOTIFY);
  pg_start_timer(c, timeout_ms);
  pg_update_poll(c);
  return opsh_yield(L, pg_op_cancel, c, lua_gettop(L), notify_k);
}

static const luaL_Reg query_methods[] = {
  {"query", conn_query},
  {"exec", conn_exec},
  {"_copy", conn_copy},
  {"_wait_notification", conn_wait_notification},
  {NULL, NULL}
};

void pg_query_register(lua_State *L) { luaL_setfuncs(L, query_methods, 0); }
