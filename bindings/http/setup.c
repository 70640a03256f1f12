/*
** setup.c — a request spec table (built by lua/opsh/http.lua) onto an easy handle:
** URL and query, method, headers (values may be opsh.secret), body (string, secret or a
** file streamed through the read callback, upload.c), timeouts, TLS (CA, client
** certificate and key as PEM in memory or as files), proxy. Secret bytes are read here only,
** and only into memory that is wiped (headers) or borrowed from the secret itself (bodies, keys).
**
** spec = {method=, url=, query={k1, v1, ...}, headers={n1, v1, ...}, body=, body_file=,
**         offset=, length=, body_source=, timeout_ms=, connect_timeout_ms=, idle_timeout_ms=,
**         low_speed_limit=, low_speed_time=, ca=, cert=, key=, insecure=, proxy=,
**         follow=, max_body=, compressed=, secret_fields={names}}
** body_file is sent from `offset` for `length` bytes (default: all of it); body_source = true:
** the task writes the body (t:write), `length` bytes (Content-Length) or chunked.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include "http.h"

/* [-0, +0, m] pin the value at idx for the transfer's life (curl borrows its bytes), in the
** table in uservalue 1 of the transfer userdata at `ud` */
static void anchor(lua_State *L, int ud, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, ud, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, ud, 1);
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}

/* [-0, +1, -] spec[name] on the stack; its type */
static int field(lua_State *L, int spec, const char *name) {
  return lua_getfield(L, spec, name);
}

static long opt_long(lua_State *L, int spec, const char *name, long dflt) {
  field(L, spec, name);
  long v = lua_isnil(L, -1) ? dflt : (long)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int spec, const char *name) {
  field(L, spec, name);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int is_pem(const char *s, size_t len) {
  return len > 10 && memmem(s, len, "-----BEGIN", 10) != NULL;
}

static void check_no_newline(lua_State *L, const char *s, size_t len, const char *what, const char *name) {
  if (memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len))
    opsh_error(L, "usage", "http: %s %s contains a line break or NUL", what, name);
}

/* [-0, +0, v] url + '?'/'&' + escaped query pairs, into memory the caller wipes and frees */
static char *build_url(lua_State *L, int spec, size_t *out_len) {
  field(L, spec, "url");
  size_t ulen;
  const char *url = luaL_checklstring(L, -1, &ulen);
  lua_pop(L, 1);
  byte_buf b = {0};
  int ok = byte_buf_add(&b, url, ulen) == 0;
  if (field(L, spec, "query") == LUA_TTABLE) {
    int q = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, q);
    char sep = memchr(url, '?', ulen) ? '&' : '?';
    if (ulen > 0 && (url[ulen - 1] == '?' || url[ulen - 1] == '&')) sep = 0;
    for (lua_Integer i = 1; ok && i + 1 <= n; i += 2) {
      lua_rawgeti(L, q, i);
      lua_rawgeti(L, q, i + 1);
      size_t klen, vlen;
      const char *k = lua_tolstring(L, -2, &klen);
      const char *v = opsh_is_secret(L, -1) || lua_type(L, -1) == LUA_TSTRING
                        ? opsh_secret_check(L, -1, &vlen) : NULL;
      if (!k || !v) {
        explicit_bzero(b.data, b.len);
        byte_buf_free(&b);
        opsh_error(L, "usage", "http: query entries must be strings");
      }
      if (klen > INT_MAX || vlen > INT_MAX) {   /* curl_easy_escape takes an int length */
        explicit_bzero(b.data, b.len);
        byte_buf_free(&b);
        opsh_error(L, "usage", "http: a query entry is larger than 2 GiB");
      }
      char *ek = curl_easy_escape(NULL, k, (int)klen);
      char *ev = curl_easy_escape(NULL, v, (int)vlen);
      if (!ek || !ev) ok = 0;
      if (ok && sep) ok = byte_buf_add(&b, &sep, 1) == 0;
      if (ok) ok = byte_buf_add(&b, ek, strlen(ek)) == 0 && byte_buf_add(&b, "=", 1) == 0 &&
                   byte_buf_add(&b, ev, strlen(ev)) == 0;
      sep = '&';
      if (ev) explicit_bzero(ev, strlen(ev));
      curl_free(ek);
      curl_free(ev);
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  if (ok) ok = byte_buf_add(&b, "", 1) == 0;
  if (!ok) {
    if (b.data) explicit_bzero(b.data, b.len);
    byte_buf_free(&b);
    opsh_error(L, "memory", "out of memory");
  }
  *out_len = b.len - 1;
  return b.data;
}

static void set_url(lua_State *L, int spec, http_xfer *x) {
  size_t len;
  char *url = build_url(L, spec, &len);
  /* https may be HTTP/2: wait for a connection being set up to the host rather than open
  ** another, so that concurrent requests share one connection as streams */
  curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, strncasecmp(url, "https:", 6) == 0 ? 1L : 0L);
  CURLcode rc = curl_easy_setopt(x->easy, CURLOPT_URL, url);   /* curl keeps a copy */
  explicit_bzero(url, len);
  free(url);
  if (rc != CURLE_OK) opsh_error(L, "usage", "http: the URL is not valid");
}

static void set_headers(lua_State *L, int spec, http_xfer *x) {
  if (field(L, spec, "headers") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int h = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, h);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    lua_rawgeti(L, h, i);
    lua_rawgeti(L, h, i + 1);
    size_t nlen, vlen;
    const char *name = luaL_checklstring(L, -2, &nlen);
    const char *v = opsh_secret_check(L, -1, &vlen);
    check_no_newline(L, name, nlen, "header name", "");
    if (memchr(name, ':', nlen) || nlen == 0) opsh_error(L, "usage", "http: invalid header name '%s'", name);
    check_no_newline(L, v, vlen, "value of header", name);
    /* "Name;" sends an empty value; "Name:" alone would remove curl's own header */
    size_t len = nlen + 2 + vlen + 1;
    char *line = malloc(len);
    if (!line) opsh_error(L, "memory", "out of memory");
    memcpy(line, name, nlen);
    if (vlen == 0) {
      line[nlen] = ';';
      line[nlen + 1] = '\0';
    } else {
      line[nlen] = ':';
      line[nlen + 1] = ' ';
      memcpy(line + nlen + 2, v, vlen);
      line[nlen + 2 + vlen] = '\0';
    }
    struct curl_slist *l = curl_slist_append(x->headers, line);
    explicit_bzero(line, len);
    free(line);
    if (!l) opsh_error(L, "memory", "out of memory");
    x->headers = l;
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

/* the body; a body_file is opened by http_setup once nothing else can fail: returns its path */
static const char *set_body(lua_State *L, int spec, int ud, http_xfer *x, const char *method) {
  const char *file = opsh_opt_string(L, spec, "body_file", NULL, "http");
  int feed = opt_bool(L, spec, "body_source");
  if (file || feed) {
    x->feed = feed;
    curl_easy_setopt(x->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, feed ? http_on_feed : http_on_read);
    curl_easy_setopt(x->easy, CURLOPT_READDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_SEEKFUNCTION, feed ? http_on_feed_seek : http_on_seek);
    curl_easy_setopt(x->easy, CURLOPT_SEEKDATA, x);
    /* bigger sends (curl's default is 64 KiB): fewer read callbacks and system calls */
    curl_easy_setopt(x->easy, CURLOPT_UPLOAD_BUFFERSIZE, (long)HTTP_UPLOAD_BUFFER);
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
    /* a body_source of unknown length goes chunked (HTTP/1.1) */
    long length = opt_long(L, spec, "length", -1);
    if (feed) curl_easy_setopt(x->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)length);
    return file;
  }
  int t = field(L, spec, "body");
  if (t != LUA_TNIL) {
    size_t len;
    const char *body = opsh_secret_check(L, -1, &len);
    anchor(L, ud, -1);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
  } else if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
    /* Content-Length: 0, which some servers (Azure) require on an empty PUT or POST */
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
  } else if (!strcmp(method, "HEAD")) {
    curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
  }
  lua_pop(L, 1);
  return NULL;
}

/* a PEM string (in memory, borrowed) or a file path for CA, certificate or key */
static void set_pem(lua_State *L, int spec, int ud, http_xfer *x, const char *name,
                    CURLoption blob_opt, CURLoption path_opt) {
  if (field(L, spec, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  size_t len;
  const char *s = opsh_secret_check(L, -1, &len);
  if (is_pem(s, len)) {
    anchor(L, ud, -1);
    struct curl_blob blob = {(void *)s, len, CURL_BLOB_NOCOPY};
    if (curl_easy_setopt(x->easy, blob_opt, &blob) != CURLE_OK)
      opsh_error(L, "dependency", "http: this libcurl cannot take %s in memory", name);
  } else {
    if (memchr(s, '\0', len)) opsh_error(L, "usage", "http: %s is neither PEM nor a file path", name);
    curl_easy_setopt(x->easy, path_opt, s);
  }
  lua_pop(L, 1);
}

static void set_tls(lua_State *L, int spec, int ud, http_xfer *x) {
  if (opt_bool(L, spec, "insecure")) {
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (field(L, spec, "ca") != LUA_TNIL) {
    /* only the given CA is trusted, as kubeconfig's certificate-authority-data means */
    curl_easy_setopt(x->easy, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(x->easy, CURLOPT_CAPATH, NULL);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* libcurl >= 7.87 keeps a CA file's store for 24 h by path: a CA file rewritten in place (the
    ** twin's reset makes a new CA at the same path) would go on being trusted, the new one not */
    curl_easy_setopt(x->easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
#endif
  }
  lua_pop(L, 1);
  set_pem(L, spec, ud, x, "ca", CURLOPT_CAINFO_BLOB, CURLOPT_CAINFO);
  set_pem(L, spec, ud, x, "cert", CURLOPT_SSLCERT_BLOB, CURLOPT_SSLCERT);
  set_pem(L, spec, ud, x, "key", CURLOPT_SSLKEY_BLOB, CURLOPT_SSLKEY);
}

void http_setup(lua_State *L, int spec, int ud, http_xfer *x) {
  CURL *e = x->easy;
  const char *method = opsh_opt_string(L, spec, "method", NULL, "http");
  if (!method) method = "GET";
  x->follow = opt_bool(L, spec, "follow");
  x->max_body = (curl_off_t)opt_long(L, spec, "max_body", 0);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  set_url(L, spec, x);
  set_headers(L, spec, x);
  const char *file = set_body(L, spec, ud, x, method);
  set_tls(L, spec, ud, x);
  /* set on every request, to its value or curl's default, since a pooled handle may keep
  ** the last request's */
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, opt_bool(L, spec, "compressed") ? "" : NULL);
  long timeout = opt_long(L, spec, "timeout_ms", 0);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout > 0 ? timeout : 0L);
  long connect_timeout = opt_long(L, spec, "connect_timeout_ms", 0);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout > 0 ? connect_timeout : 0L);
  long idle = opt_long(L, spec, "idle_timeout_ms", 0);
  x->idle_ms = idle > 0 ? (uint64_t)idle : 0;
  long low_speed = opt_long(L, spec, "low_speed_limit", 0);
  if (low_speed > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, low_speed);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, opt_long(L, spec, "low_speed_time", 30));
  }
  http_secret_setup(L, spec, x);
  if (x->follow) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  }
  const char *proxy = opsh_opt_string(L, spec, "proxy", NULL, "http");
  if (proxy) {
    curl_easy_setopt(e, CURLOPT_PROXY, proxy);
  }
  /* last: once the file is being opened, its completion starts the transfer */
  if (file && http_upload_open(x, opsh_loop(L), file, (int64_t)opt_long(L, spec, "offset", 0),
                               (int64_t)opt_long(L, spec, "length", -1)) != 0)
    opsh_error(L, "memory", "out of memory");
}
