/*
** tls.c — TLS for opsh._server: OpenSSL over memory BIOs (ciphertext moves through
** libuv, OpenSSL never touches the socket), certificates and keys from PEM text, optional
** client-certificate verification, and the verified client certificate's subject for handlers.
** A private key given as a file path is read here, into memory wiped as soon as OpenSSL has
** parsed it, so that no copy of it is ever a Lua string.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "server.h"

static char plain_buf[64 * 1024];

static void set_err(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_last_error();
  char detail[200] = "";
  if (e) ERR_error_string_n(e, detail, sizeof detail);
  snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", detail);
  ERR_clear_error();
}

/* a key must never wait for a passphrase on the terminal */
static int no_passphrase(char *buf, int size, int rwflag, void *u) { return 0; }

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;   /* no http/1.1 offered (h2 only): carry on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

#define PEM_MAX (64 << 20)   /* far beyond any certificate bundle; and BIOs count in int */
#define KEY_FILE_MAX (1 << 20)

/* [-0, +0, -] a key file's bytes in *out (malloc'ed; the caller wipes and frees them), or -1
** with err set */
static int read_key_file(const char *path, char **out, size_t *len, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, errlen, "tls.key: cannot read the key file: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
    snprintf(err, errlen, "tls.key: the key file is not a regular file under 1 MiB");
    close(fd);
    return -1;
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    snprintf(err, errlen, "tls.key: out of memory");
    close(fd);
    return -1;
  }
  for (;;) {
    ssize_t got = read(fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      snprintf(err, errlen, "tls.key: cannot read the key file: %s", strerror(errno));
      OPENSSL_cleanse(buf, n);
      free(buf);
      close(fd);
      return -1;
    }
    if (got == 0 || (n += (size_t)got) == cap) break;   /* a file that grew: the first 1 MiB */
  }
  close(fd);
  *out = buf;
  *len = n;
  return 0;
}

/* [-0, +0, -] the private key in key: PEM text, or else the path of a PEM file */
static EVP_PKEY *read_key(const char *key, size_t key_len, char *err, size_t errlen) {
  char *file = NULL;
  size_t file_len = 0;
  const char *pem = key;
  size_t pem_len = key_len;
  if (!memmem(key, key_len, "-----BEGIN", 10)) {
    if (strlen(key) != key_len || read_key_file(key, &file, &file_len, err, errlen) != 0) {
      if (strlen(key) != key_len) snprintf(err, errlen, "tls.key is not an unencrypted PEM private key");
      return NULL;
    }
    pem = file;
    pem_len = file_len;
  }
  BIO *b = BIO_new_mem_buf(pem, (int)pem_len);
  EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
  BIO_free(b);
  if (file) {
    OPENSSL_cleanse(file, file_len);
    free(file);
  }
  if (!pk) {
    ERR_clear_error();
    snprintf(err, errlen, "tls.key is not an unencrypted PEM private key");
  }
  return pk;
}

SSL_CTX *srv_tls_ctx(const char *cert, size_t cert_len, const char *key, size_t key_len,
                     const char *client_ca, size_t ca_len, int require_client, char *err, size_t errlen) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    set_err(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"opsh", 4);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);

  if (cert_len > PEM_MAX || key_len > PEM_MAX || (client_ca && ca_len > PEM_MAX)) {
    snprintf(err, errlen, "tls.cert, tls.key and tls.client_ca must each be under 64 MiB");
    goto fail;
  }
  BIO *b = BIO_new_mem_buf(cert, (int)cert_len);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
  if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
    set_err(err, errlen, "tls.cert is not a PEM certificate");
    goto fail_bio;
  }
  X509_free(x);
  while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL)
    SSL_CTX_add0_chain_cert(ctx, x);   /* intermediates after the leaf */
  ERR_clear_error();
  BIO_free(b);

  EVP_PKEY *pk = read_key(key, key_len, err, errlen);
  if (!pk) goto fail;
  int ok = SSL_CTX_use_PrivateKey(ctx, pk);
  EVP_PKEY_free(pk);
  if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    snprintf(err, errlen, "tls.key does not match tls.cert");
    goto fail;
  }

  if (client_ca) {
    b = BIO_new_mem_buf(client_ca, (int)ca_len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    int n = 0;
    while (b && names && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
      X509_STORE_add_cert(store, x);
      X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
      if (name && !sk_X509_NAME_push(names, name)) X509_NAME_free(name);
      X509_free(x);
      n++;
    }
    ERR_clear_error();
    BIO_free(b);
    b = NULL;
    if (n == 0) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      snprintf(err, errlen, "tls.client_ca holds no PEM certificate");
      goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, names);   /* tells clients which certificate to send */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (require_client ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
  }
  return ctx;

fail_bio:
  X509_free(x);
  BIO_free(b);
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

int srv_tls_start(srv_conn *c) {
  c->ssl = SSL_new(c->srv->ssl_ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    c->rbio = c->wbio = NULL;
    return -1;
  }
  BIO_set_mem_eof_return(c->rbio, -1);   /* an empty input BIO means "wait", not EOF */
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_accept_state(c->ssl);
  return 0;
}

/* move the ciphertext OpenSSL produced to the socket */
static int tls_flush(srv_conn *c, int notify) {
  char *p;
  long n = BIO_get_mem_data(c->wbio, &p);
  if (n <= 0) return 0;
  int r = srv_conn_write_raw(c, p, (size_t)n, notify);
  (void)BIO_reset(c->wbio);
  return r;
}

/* [-0, +0, -] a copy of the entry's text as UTF-8 */
static char *entry_text(X509_NAME *name, int idx) {
  unsigned char *utf8 = NULL;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (s) {
    memcpy(s, utf8, (size_t)n);
    s[n] = '\0';
  }
  OPENSSL_free(utf8);
  return s;
}

static srv_cert *cert_info(X509 *x) {
  srv_cert *ci = calloc(1, sizeof *ci);
  if (!ci) return NULL;
  X509_NAME *name = X509_get_subject_name(x);
  BIO *b = BIO_new(BIO_s_mem());
  if (b) {
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    ci->subject = malloc((size_t)n + 1);
    if (ci->subject) {
      memcpy(ci->subject, p, (size_t)n);
      ci->subject[n] = '\0';
    }
    BIO_free(b);
  }
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i >= 0) ci->cn = entry_text(name, i);
  int count = 0;
  for (i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationName, i)) >= 0;) count++;
  ci->o = calloc((size_t)count + 1, sizeof *ci->o);
  for (i = -1; ci->o && (i = X509_NAME_get_index_by_NID(name, NID_organizationName, i)) >= 0;) {
    char *s = entry_text(name, i);
    if (s) ci->o[ci->o_count++] = s;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
    for (unsigned k = 0; k < mdlen && k < 32; k++) snprintf(ci->sha256 + 2 * k, 3, "%02x", md[k]);
  return ci;
}

void srv_cert_free(srv_cert *ci) {
  if (!ci) return;
  free(ci->subject);
  free(ci->cn);
  for (int i = 0; i < ci->o_count; i++) free(ci->o[i]);
  free(ci->o);
  free(ci);
}

void srv_tls_input(srv_conn *c, const char *data, size_t len) {
  if (len > INT_MAX || BIO_write(c->rbio, data, (int)len) != (int)len) {   /* reads are 64 KiB at most */
    srv_conn_close(c);
    return;
  }
  if (!c->handshaken) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    tls_flush(c, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    if (e != SSL_ERROR_NONE) {
      ERR_clear_error();
      srv_conn_close_after_flush(c);   /* the alert goes out first */
      return;
    }
    c->handshaken = 1;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (peer && SSL_get_verify_result(c->ssl) == X509_V_OK) c->cert = cert_info(peer);
  }
  for (;;) {
    int n = SSL_read(c->ssl, plain_buf, sizeof plain_buf);
    if (n > 0) {
      srv_conn_feed(c, plain_buf, (size_t)n);
      if (c->state == CONN_CLOSING || c->close_when_flushed) return;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) break;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) srv_conn_close(c);   /* the client's close_notify */
    else srv_conn_close_after_flush(c);
    return;
  }
  if (BIO_ctrl_pending(c->wbio)) tls_flush(c, 0);   /* session tickets, key updates */
}

int srv_tls_send(srv_conn *c, const char *data, size_t len, int notify) {
  while (len > 0) {
    int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
    int n = SSL_write(c->ssl, data, chunk);   /* a memory BIO always takes it all */
    if (n <= 0) {
      ERR_clear_error();
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return tls_flush(c, notify);
}
