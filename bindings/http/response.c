/*
** response.c — what comes back: curl's write/header callbacks fill C buffers (never
** Lua: these run inside curl), and the task, once woken, turns them into Lua values:
** the status, a {lowercase name = value} header table, the body, or a structured error.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <errno.h>
#include "http.h"

/* ---- curl callbacks ---- */

/* append to the body; one that may hold secrets grows without leaving copies behind */
static int body_add(http_xfer *x, const char *p, size_t len) {
  if (x->nsfields > 0 && http_secret_reserve(&x->body, len) != 0) return -1;
  return byte_buf_add(&x->body, p, len);
}

size_t http_on_write(char *p, size_t size, size_t n, void *ud) {
  http_xfer *x = ud;
  size_t len = size * n;
  http_xfer_activity(x);
  if (x->stream) {
    if (x->body.len >= HTTP_STREAM_HIGH_WATER) {
      x->paused = 1;   /* curl keeps this chunk and offers it again after curl_easy_pause */
      return CURL_WRITEFUNC_PAUSE;
    }
    if (byte_buf_add(&x->body, p, len) != 0) {
      x->nomem = 1;
      return 0;
    }
    x->head_done = 1;
    http_xfer_notify(x);
    return len;
  }
  if (x->max_body > 0 && (curl_off_t)(x->body.len + len) > x->max_body) {
    x->too_large = 1;
    return 0;   /* CURLE_WRITE_ERROR ends the transfer */
  }
  if (body_add(x, p, len) != 0) {
    x->nomem = 1;
    return 0;
  }
  return len;
}

/* a response curl follows when it has a Location (and follow is on) */
static int is_redirect(long status) {
  return status >= 300 && status < 400 && status != 304;
}

size_t http_on_header(char *p, size_t size, size_t n, void *ud) {
  http_xfer *x = ud;
  size_t len = size * n;
  http_xfer_activity(x);
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* a new response (after 1xx, or a followed redirect): forget the previous one */
    x->head.len = 0;
    x->has_location = 0;
    if (!x->stream) {
      if (x->nsfields > 0 && x->body.data) explicit_bzero(x->body.data, x->body.len);
      x->body.len = 0;
    }
    const char *sp = memchr(p, ' ', len);
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
  } else if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
    if (x->status >= 200 && !(x->follow && x->has_location && is_redirect(x->status))) {
      x->head_done = 1;
      http_xfer_notify(x);
    }
    return len;
  } else if (len > 9 && strncasecmp(p, "location:", 9) == 0) {
    x->has_location = 1;
  }
  if (byte_buf_add(&x->head, p, len) != 0) {
    x->nomem = 1;
    return 0;
  }
  return len;
}

/* ---- Lua values (called by the task, never from a curl callback) ---- */

static const char *trim(const char *s, const char *end, const char **out_end) {
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
  *out_end = end;
  return s;
}

void http_push_headers(lua_State *L, http_xfer *x) {
  lua_createtable(L, 0, 8);
  int t = lua_gettop(L);
  const char *p = x->head.data, *end = p ? p + x->head.len : p;   /* no NULL + 0 */
  char name[256];
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    size_t nlen = colon ? (size_t)(colon - p) : 0;
    /* a status line ("HTTP/1.1 404 Not: found") is not a header; compare only what the line holds */
    if (colon && nlen > 0 && nlen < sizeof name && (nlen < 5 || memcmp(p, "HTTP/", 5) != 0)) {
      for (size_t i = 0; i < nlen; i++) {
        char c = p[i];
        name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
      }
      const char *vend;
      const char *v = trim(colon + 1, line_end, &vend);
      lua_pushlstring(L, name, nlen);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, t) == LUA_TSTRING) {
        /* a repeated header: joined as RFC 9110 allows */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
      }
      lua_rawset(L, t);
    }
    p = eol ? eol + 1 : end;
  }
}

/* [-0, +1, m] the reason phrase of the status line, or "" (HTTP/2 has none) */
static void push_reason(lua_State *L, http_xfer *x) {
  const char *p = x->head.data, *end = p ? p + x->head.len : p;   /* no NULL + 0 */
  if (!p || x->head.len < 5 || memcmp(p, "HTTP/", 5) != 0) {
    lua_pushliteral(L, "");
    return;
  }
  const char *eol = memchr(p, '\n', x->head.len);
  if (!eol) eol = end;
  const char *sp = memchr(p, ' ', (size_t)(eol - p));
  const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(eol - sp - 1)) : NULL;
  if (!sp2) {
    lua_pushliteral(L, "");
    return;
  }
  const char *rend;
  const char *r = trim(sp2 + 1, eol, &rend);
  lua_pushlstring(L, r, (size_t)(rend - r));
}

static const char *version_name(long v) {
  switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_1_1: return "1.1";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return NULL;
  }
}

void http_push_response(lua_State *L, http_xfer *x) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, x->status);
  lua_setfield(L, -2, "status");
  push_reason(L, x);
  lua_setfield(L, -2, "reason");
  http_push_headers(L, x);
  lua_setfield(L, -2, "headers");
  if (x->stream) lua_pushliteral(L, "");
  else lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
  lua_setfield(L, -2, "body");
  const char *v = version_name(x->version);
  if (v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, "version");
  }
  if (x->nsecrets > 0) {
    http_secret_push(L, x);
    lua_setfield(L, -2, "secret_values");
  }
  byte_buf_free(&x->body);
}

int http_xfer_failed(http_xfer *x) {
  return x->result != CURLE_OK || x->too_large || x->nomem || x->read_failed || x->cut_head ||
         x->start_failed != CURLM_OK || x->bad_secret;
}

static int tls_alert(http_xfer *x) {
  return strstr(x->errbuf, "SSL") || strstr(x->errbuf, "TLS") || strstr(x->errbuf, "alert");
}

/* a new https connection that ended before any response */
static int tls_dropped(http_xfer *x) {
  return x->fresh_tls && x->status == 0;
}

static const char *error_kind(http_xfer *x) {
  switch (x->result) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
      return "connect";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      /* with TLS 1.3 a refused client certificate shows after the handshake, as an alert or
      ** as a connection the server already closed */
      return tls_alert(x) || tls_dropped(x) ? "tls" : "connect";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    default:
      return "protocol";
  }
}

/* [-0, +1, m] curl's message for a failed transfer, the system's reason in place of curl's
** generic one ("Couldn't connect to server" -> "Connection refused") */
static void push_curl_detail(lua_State *L, http_xfer *x) {
  const char *generic = curl_easy_strerror(x->result);
  const char *detail = x->errbuf[0] ? x->errbuf : generic;
  size_t dlen = strlen(detail);
  while (dlen > 0 && (detail[dlen - 1] == '\n' || detail[dlen - 1] == '\r')) dlen--;
  const char *os = x->os_errno ? strerror(x->os_errno) : NULL;
  size_t glen = strlen(generic);
  if (os && !memmem(detail, dlen, os, strlen(os))) {
    if (dlen > glen + 2 && memcmp(detail + dlen - glen, generic, glen) == 0 &&
        memcmp(detail + dlen - glen - 2, ": ", 2) == 0)
      dlen -= glen + 2;
    lua_pushlstring(L, detail, dlen);
    lua_pushfstring(L, ": %s", os);
    lua_concat(L, 2);
  } else {
    lua_pushlstring(L, detail, dlen);
  }
}

void http_push_error(lua_State *L, http_xfer *x) {
  if (x->too_large) {
    opsh_error_push(L, "protocol", "response body larger than max_body (%I bytes)",
                    (lua_Integer)x->max_body);
  } else if (x->idle_expired) {
    opsh_error_push(L, "timeout", "nothing received or sent for %f s (idle_timeout)",
                    (lua_Number)x->idle_ms / 1000);
  } else if (x->bad_secret) {
    opsh_error_push(L, "protocol", "a secret_fields value in the response is not a valid JSON string");
  } else if (x->read_failed) {
    const char *path = x->upload_path ? x->upload_path : "";
    if (x->bad_range)
      opsh_error_push(L, "io", "body_file %s: offset and length go beyond the end of the file (%I bytes)",
                      path, (lua_Integer)x->file_size);
    else
      opsh_error_push(L, "io", "body_file %s: %s", path, strerror(x->read_failed));
    opsh_error_setstr(L, "path", path);
  } else if (x->nomem) {
    opsh_error_push(L, "protocol", "out of memory while receiving the response");
  } else if (x->start_failed != CURLM_OK) {
    opsh_error_push(L, "protocol", "libcurl: %s", curl_multi_strerror(x->start_failed));
  } else if (x->cut_head) {
    opsh_error_push(L, "protocol", "the server closed the connection inside the response headers");
  } else {
    const char *kind = error_kind(x);
    if (!strcmp(kind, "tls") && !tls_alert(x))
      opsh_error_push(L, kind, "the server closed the connection after the TLS handshake "
                      "(was the client certificate refused?): %s", "");
    else
      opsh_error_push(L, kind, "%s", "");
    lua_getfield(L, -1, "message");
    push_curl_detail(L, x);
    lua_concat(L, 2);
    lua_setfield(L, -2, "message");
  }
  if (x->result != CURLE_OK) opsh_error_setint(L, "curl_code", (lua_Integer)x->result);
  if (x->status > 0 && !x->cut_head) opsh_error_setint(L, "status", x->status);
}
