/*
** server.h — internal interface between the parts of opsh._server: the Lua API
** (server.c), connections and HTTP/1.1 (conn.c) and TLS through OpenSSL memory BIOs
** (tls.c). Nothing here is visible outside the module.
*/
#ifndef opsh_server_h
#define opsh_server_h

#include <stdint.h>
#include <http_parser.h>
#include <openssl/ssl.h>
#include "opsh.h"
#include "buf.h"

typedef struct srv_server srv_server;
typedef struct srv_conn srv_conn;
typedef struct srv_exchange srv_exchange;

typedef struct srv_cert {
  char *subject;            /* RFC 2253 one-line form */
  char *cn;                 /* first commonName, or NULL */
  char **o;                 /* organizationName values (Kubernetes groups) */
  int o_count;
  char sha256[65];          /* lowercase hex of the DER */
} srv_cert;

struct srv_server {
  uv_tcp_t *listener;       /* malloc'ed; NULL once closing */
  SSL_CTX *ssl_ctx;         /* NULL for plain HTTP */
  int refs;                 /* the Lua handle + the listener + each connection */
  int closed;
  int port;
  size_t max_body;
  uint64_t idle_ms;         /* keep-alive and request-read timeout */
  srv_conn *conns;          /* every open connection */
  srv_conn *ready_head, *ready_tail;   /* complete requests waiting for accept() */
  opsh_task *acceptor;      /* task suspended in accept(), or NULL */
  long served;
};

enum srv_conn_state {
  CONN_READING,             /* reading a request (or idle between requests) */
  CONN_QUEUED,              /* a complete request waits in the ready queue */
  CONN_HANDLING,            /* a handler task owns the request */
  CONN_STREAMING,           /* the head of a chunked response is out */
  CONN_CLOSING
};

struct srv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles;              /* open uv handles; the memory goes with the last close callback */
  srv_server *srv;
  srv_conn *prev, *next;    /* srv->conns */
  srv_conn *rnext;          /* srv ready queue */
  int state;
  http_parser parser;
  SSL *ssl;
  BIO *rbio, *wbio;
  int handshaken;
  srv_cert *cert;           /* verified client certificate, or NULL */
  char remote[64];
  /* the request being read */
  byte_buf url, headers, body, in;   /* headers: "name\0value\0"...; in: bytes read ahead */
  int last_was_value;
  int reject;               /* status to answer with when the parser stops on a callback */
  int keep_alive, http_minor, method, upgrade;
  srv_exchange *x;          /* the handler's view of the current request */
  int writes;               /* uv_write requests in flight */
  int close_when_flushed;
};

struct srv_exchange {
  srv_conn *conn;           /* NULL once the connection is gone */
  srv_server *srv;          /* for the served counter; kept alive by a reference */
  int head;                 /* a HEAD request: no body goes out */
  int chunked;              /* the stream uses chunked encoding (HTTP/1.1) */
  int done;                 /* the response is complete (or aborted) */
  int streaming;
  opsh_task *waiter;        /* task suspended in write(), or NULL */
  int write_ok;             /* how the last write() ended: flushed (1) or the client went away */
};

/* ---- conn.c ---- */
void srv_server_unref(srv_server *s);
void srv_on_connection(uv_stream_t *listener, int status);
/* close a connection (idempotent); wakes a writer waiting on it with a "closed" error */
void srv_conn_close(srv_conn *c);
/* stop reading requests; send FIN once the queued bytes are out, then linger and close */
void srv_conn_close_after_flush(srv_conn *c);
/* queue bytes for the socket (through TLS when on); notify: wake x->waiter when flushed */
int srv_conn_send(srv_conn *c, const char *data, size_t len, int notify);
/* the exchange is finished: read the next request (keep-alive) or close */
void srv_conn_request_done(srv_conn *c, int keep_alive);
/* bytes of the plaintext HTTP stream arrived */
void srv_conn_feed(srv_conn *c, const char *data, size_t len);
const char *srv_reason(int status);
/* append, keeping a NUL after the data (url and header fields are read as C strings); 0 or -1 */
int srv_buf_add(byte_buf *b, const char *p, size_t n);

/* ---- tls.c ---- */
/* [-0, +0, -] an SSL_CTX from PEM text; NULL with a message in err on failure */
SSL_CTX *srv_tls_ctx(const char *cert, size_t cert_len, const char *key, size_t key_len,
                     const char *client_ca, size_t ca_len, int require_client, char *err, size_t errlen);
int srv_tls_start(srv_conn *c);
/* ciphertext arrived: run the handshake, decrypt and feed the plaintext */
void srv_tls_input(srv_conn *c, const char *data, size_t len);
/* encrypt and queue plaintext */
int srv_tls_send(srv_conn *c, const char *data, size_t len, int notify);
void srv_cert_free(srv_cert *cert);
/* queue the raw bytes on the socket */
int srv_conn_write_raw(srv_conn *c, const char *data, size_t len, int notify);

#endif
