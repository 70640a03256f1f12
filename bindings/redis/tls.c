/*
** tls.c — TLS for opsh._redis. Builds the verifying OpenSSL client (CA from PEM text,
** a file or the system store; chain plus host name or IP address check on by default).
** With hiredis < 1.0, which has no TLS, hiredis talks plaintext to one end of a local stream
** socket and this pump moves the bytes between the other end and the TCP connection through
** the SSL session (memory BIOs), with back-pressure on both sides.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "redis.h"

SSL_CTX *rtls_ctx_new(const char *ca, size_t ca_len, char *err, size_t errlen) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!ca) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      snprintf(err, errlen, "cannot load the system CA store");
      goto fail;
    }
  } else if (ca_len > INT_MAX) {
    snprintf(err, errlen, "ca: too large");
    goto fail;
  } else if (memmem(ca, ca_len, "-----BEGIN", 10)) {
    BIO *bio = BIO_new_mem_buf(ca, (int)ca_len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509 *x;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
      if (X509_STORE_add_cert(store, x) == 1) n++;
      X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();   /* the loop ends on a "no start line" error */
    if (n == 0) {
      snprintf(err, errlen, "ca: no certificate in the PEM text");
      goto fail;
    }
  } else if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
    snprintf(err, errlen, "ca: cannot read a PEM certificate from %s", ca);
    goto fail;
  }
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

static int is_ip(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

SSL *rtls_ssl_new(SSL_CTX *ctx, const char *servername, int verify, char *err, size_t errlen) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) {
    snprintf(err, errlen, "cannot create a TLS session");
    return NULL;
  }
  int ip = is_ip(servername);
  if (!ip) SSL_set_tlsext_host_name(ssl, servername);
  if (verify) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), servername)
                : SSL_set1_host(ssl, servername);
    if (ok != 1) {
      snprintf(err, errlen, "cannot check the server name %s", servername);
      SSL_free(ssl);
      ERR_clear_error();
      return NULL;
    }
  } else {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

void rtls_describe_failure(SSL *ssl, const char *fallback, char *out, size_t outlen) {
  long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  unsigned long e = ERR_peek_last_error();
  if (vr != X509_V_OK) {
    snprintf(out, outlen, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
  } else if (e) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    snprintf(out, outlen, "%s", buf);
  } else {
    snprintf(out, outlen, "%s", fallback);
  }
  ERR_clear_error();
}

#if !RTLS_NATIVE

#define HIGH_WATER (1u << 20)   /* stop reading the other side above this much queued */
#define LOW_WATER (256u << 10)

enum { T_CONNECTING, T_HANDSHAKE, T_OPEN, T_DEAD };

struct rtls {
  uv_tcp_t tcp;
  uv_pipe_t local;          /* our end of hiredis's socket */
  uv_connect_t creq;
  uv_shutdown_t sreq;
  SSL *ssl;
  BIO *rbio, *wbio;         /* from the server / to the server */
  rconn *owner;             /* NULL once closed */
  int state;
  int local_open, handles, closing, shut_local;
  int tcp_paused, local_paused;   /* reading stopped for back-pressure */
  char buf[64 * 1024];
};

typedef struct wreq {
  uv_write_t req;
  rtls *t;
  uv_buf_t buf;
  char data[];
} wreq;

static void on_local_written(uv_write_t *req, int status);
static void on_tcp_written(uv_write_t *req, int status);
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_local_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  rtls *t = h->data;
  *buf = uv_buf_init(t->buf, sizeof t->buf);
}

static void on_closed(uv_handle_t *h) {
  rtls *t = h->data;
  if (--t->handles == 0) {
    SSL_free(t->ssl);
    free(t);
  }
}

/* the session is unusable: tell the owner, and end hiredis's stream so it sees the loss */
static void fail(rtls *t, const char *why) {
  if (t->state == T_DEAD) return;
  int was_open = t->state == T_OPEN;
  t->state = T_DEAD;
  uv_read_stop((uv_stream_t *)&t->tcp);
  if (!t->owner) return;
  if (was_open) {
    rconn_tls_broken(t->owner, why);
    if (t->local_open && !t->shut_local) {
      t->shut_local = 1;
      uv_shutdown(&t->sreq, (uv_stream_t *)&t->local, NULL);
    }
  } else {
    rconn_tls_failed(t->owner, "tls", why);
  }
}

/* queue len bytes for a stream, copied from data, or from what OpenSSL wrote when NULL */
static int queue_write(rtls *t, uv_stream_t *s, const char *data, size_t len, uv_write_cb cb) {
  wreq *w = malloc(sizeof *w + len);
  if (!w) return -1;
  w->t = t;
  if (!data) BIO_read(t->wbio, w->data, (int)len);
  else memcpy(w->data, data, len);
  w->buf = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, s, &w->buf, 1, cb) != 0) {
    free(w);
    return -1;
  }
  return 0;
}

/* send what OpenSSL produced for the server */
static void flush_tls(rtls *t) {
  size_t n;
  while ((n = BIO_ctrl_pending(t->wbio)) > 0) {
    if (n > (1u << 30)) n = 1u << 30;   /* BIO_read takes an int */
    if (t->closing || queue_write(t, (uv_stream_t *)&t->tcp, NULL, n, on_tcp_written) != 0) {
      (void)BIO_reset(t->wbio);
      if (!t->closing) fail(t, "cannot write to the server");
      return;
    }
  }
  if (t->state == T_OPEN && !t->local_paused &&
      uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) > HIGH_WATER) {
    t->local_paused = 1;
    uv_read_stop((uv_stream_t *)&t->local);
  }
}

static void handshake(rtls *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  flush_tls(t);
  if (r == 1) {
    t->state = T_OPEN;
    if (t->owner) rconn_tls_up(t->owner);
    return;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  char why[320];
  rtls_describe_failure(t->ssl, "the server ended the TLS handshake", why, sizeof why);
  fail(t, why);
}

/* decrypt what has arrived and hand the plaintext to hiredis */
static void drain_tls(rtls *t) {
  for (;;) {
    ERR_clear_error();
    int r = SSL_read(t->ssl, t->buf, sizeof t->buf);
    if (r > 0) {
      if (t->local_open && !t->shut_local &&
          queue_write(t, (uv_stream_t *)&t->local, t->buf, (size_t)r, on_local_written) != 0) {
        fail(t, "cannot pass data to the client");
        return;
      }
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    flush_tls(t);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      fail(t, "the server closed the TLS session");
      return;
    }
    char why[320];
    rtls_describe_failure(t->ssl, "TLS read failed", why, sizeof why);
    fail(t, why);
    return;
  }
  if (!t->tcp_paused && t->local_open &&
      uv_stream_get_write_queue_size((uv_stream_t *)&t->local) > HIGH_WATER) {
    t->tcp_paused = 1;
    uv_read_stop((uv_stream_t *)&t->tcp);
  }
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  rtls *t = s->data;
  if (nread == 0 || t->closing) return;
  if (nread < 0) {
    fail(t, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    return;
  }
  BIO_write(t->rbio, buf->base, (int)nread);
  if (t->state == T_HANDSHAKE) handshake(t);
  else if (t->state == T_OPEN) drain_tls(t);
}

static void on_local_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  rtls *t = s->data;
  if (nread == 0 || t->closing) return;
  if (nread < 0) {
    uv_read_stop(s);
    return;
  }
  if (t->state != T_OPEN) return;
  for (ssize_t done = 0; done < nread;) {
    ERR_clear_error();
    int r = SSL_write(t->ssl, buf->base + done, (int)(nread - done));   /* into a memory BIO */
    if (r <= 0) {
      char why[320];
      rtls_describe_failure(t->ssl, "TLS write failed", why, sizeof why);
      fail(t, why);
      return;
    }
    done += r;
  }
  flush_tls(t);
}

static void on_tcp_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  rtls *t = w->t;
  free(w);
  if (t->closing) return;
  if (status < 0) {
    fail(t, uv_strerror(status));
    return;
  }
  if (t->local_paused && uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) < LOW_WATER) {
    t->local_paused = 0;
    uv_read_start((uv_stream_t *)&t->local, on_alloc, on_local_read);
  }
}

static void on_local_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  rtls *t = w->t;
  free(w);
  if (t->closing || status < 0) return;
  if (t->tcp_paused && t->state == T_OPEN &&
      uv_stream_get_write_queue_size((uv_stream_t *)&t->local) < LOW_WATER) {
    t->tcp_paused = 0;
    uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_tcp_read);
  }
}

static void on_tcp_connected(uv_connect_t *req, int status) {
  rtls *t = req->data;
  if (t->closing) return;
  if (status < 0) {
    t->state = T_DEAD;
    if (t->owner) rconn_tls_failed(t->owner, "connect", uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&t->tcp, 1);
  t->state = T_HANDSHAKE;
  uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_tcp_read);
  handshake(t);
}

rtls *rtls_start(uv_loop_t *loop, const struct sockaddr *addr, SSL *ssl, rconn *owner) {
  rtls *t = calloc(1, sizeof *t);
  if (!t) {
    SSL_free(ssl);
    return NULL;
  }
  t->ssl = ssl;
  t->owner = owner;
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->rbio || !t->wbio) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(ssl);
    free(t);
    return NULL;
  }
  SSL_set_bio(ssl, t->rbio, t->wbio);
  uv_tcp_init(loop, &t->tcp);
  t->tcp.data = t;
  t->handles = 1;
  t->creq.data = t;
  t->state = T_CONNECTING;
  int r = uv_tcp_connect(&t->creq, &t->tcp, addr, on_tcp_connected);
  if (r != 0) {
    t->owner = NULL;
    rtls_close(t);
    return NULL;
  }
  return t;
}

int rtls_attach(rtls *t, int fd) {
  uv_pipe_init(t->tcp.loop, &t->local, 0);
  t->local.data = t;
  t->handles++;
  t->local_open = 1;
  if (uv_pipe_open(&t->local, fd) != 0) return -1;
  return uv_read_start((uv_stream_t *)&t->local, on_alloc, on_local_read);
}

void rtls_close(rtls *t) {
  if (!t || t->closing) return;
  t->closing = 1;
  t->owner = NULL;
  if (t->state == T_OPEN && !uv_is_closing((uv_handle_t *)&t->tcp)) {
    /* best effort close_notify, without waiting for it */
    ERR_clear_error();
    if (SSL_shutdown(t->ssl) >= 0) {
      char tail[256];
      int n = BIO_read(t->wbio, tail, sizeof tail);
      if (n > 0) {
        uv_buf_t b = uv_buf_init(tail, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
      }
    }
    ERR_clear_error();
  }
  t->state = T_DEAD;
  if (!uv_is_closing((uv_handle_t *)&t->tcp)) uv_close((uv_handle_t *)&t->tcp, on_closed);
  if (t->local_open && !uv_is_closing((uv_handle_t *)&t->local))
    uv_close((uv_handle_t *)&t->local, on_closed);
}

#endif
