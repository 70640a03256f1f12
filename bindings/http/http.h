/*
** http.h — what the parts of opsh._http share: the transfer (one request on one easy
** handle), the process-wide multi handle driven by the libuv loop (loop.c), request
** setup from a spec table (setup.c) and response collection (response.c).
*/
#ifndef opsh_http_h
#define opsh_http_h

#include "curl.h"
#include "opsh.h"
#include "buf.h"

#define HTTP_XFER_META "opsh.http.transfer"

/* a streamed body is paused once this much is waiting to be read by the task */
#define HTTP_STREAM_HIGH_WATER (1024 * 1024)
/* curl's upload buffer for body_file (the blocks read ahead are larger: upload.c) */
#define HTTP_UPLOAD_BUFFER (256 * 1024)
/* a body fed by the task (t:write) waits once this much is queued for curl */
#define HTTP_FEED_HIGH_WATER (1024 * 1024)


/* XF_OPENING: body_file is being opened on the thread pool; the transfer joins the multi
** handle (XF_RUNNING) once its size is known */
enum http_state { XF_NEW, XF_OPENING, XF_RUNNING, XF_DONE, XF_CLOSED };
enum http_wait { WAIT_NONE, WAIT_HEAD, WAIT_DATA, WAIT_DONE, WAIT_WRITE };

typedef struct http_xfer {
  CURL *easy;                 /* NULL once released to the pool */
  struct curl_slist *headers; /* request headers; may hold secrets, wiped when freed */
  int state;                  /* enum http_state */
  CURLcode result;
  int stream;                 /* body handed to the task in chunks (read) instead of buffered */
  int paused;                 /* receiving paused until the task reads (stream) */
  int follow;                 /* redirects followed */
  int head_done;              /* the final response's headers are complete */
  int has_location;           /* the current response has a Location header */
  int too_large;              /* the body passed max_body */
  int nomem;
  int read_failed;            /* errno: body_file could not be opened or read */
  int cut_head;               /* the connection ended inside the response headers */
  int os_errno;               /* errno of a failed connect, 0 if none */
  CURLMcode start_failed;     /* curl_multi_add_handle's error after body_file opened */
  int fresh_tls;              /* the transfer opened a new https connection */
  long status;                /* status of the current response, 0 before one */
  long version;               /* CURL_HTTP_VERSION_* of the finished transfer */
  curl_off_t max_body;        /* 0: no limit */
  byte_buf body;              /* the buffered body, or the chunks not yet read (stream) */
  byte_buf head;              /* header lines of the current response */
  struct http_upload *upload; /* body_file being read, NULL if none (upload.c) */
  char *upload_path;          /* body_file, for errors; freed on close */
  int bad_range;              /* offset/length go beyond the end of body_file ... */
  int64_t file_size;          /* ... which has this size */
  /* a body the task feeds in chunks (body_source, feed.c) */
  int feed;                   /* the body comes from t:write */
  int feed_eof;               /* t:write(nil) was called: no more chunks */
  int feed_paused;            /* curl's read callback paused: nothing queued */
  byte_buf feed_buf;          /* queued chunks; feed_pos bytes of it already given to curl */
  size_t feed_pos;
  curl_off_t feed_taken;      /* bytes given to curl in all */
  /* the idle timer (idle_timeout): the transfer ends when neither side moved for idle_ms */
  uv_timer_t *idle_timer;     /* malloc'ed while running, NULL if none */
  uint64_t idle_ms;
  uint64_t last_activity;     /* loop time of the last byte received or body chunk taken */
  int idle_expired;
  /* secret_fields: the body's string values of these members become secrets (secret.c) */
  char **sfields;
  int nsfields;
  int bad_secret;             /* such a value was not a valid JSON string */
  struct http_secret_value *secrets;
  int nsecrets;
  opsh_task *waiter;          /* the task suspended on this transfer */
  int waiting_for;            /* enum http_wait */
  struct http_xfer *prev, *next;   /* the running list */
  char errbuf[CURL_ERROR_SIZE];
} http_xfer;

/* ---- loop.c: the multi handle on the loop ---- */
/* [-0, +0, v] set up the multi handle on first use */
void http_global_init(lua_State *L);
/* an easy handle with the process-wide defaults, from the pool when one is idle; NULL if none */
CURL *http_easy_get(void);
/* add a prepared transfer to the multi handle; CURLM_OK or the error */
CURLMcode http_xfer_start(http_xfer *x);
/* stop a running transfer (cancel, close) or release a finished one's handles */
void http_xfer_release(http_xfer *x);
/* wake the waiting task if what it waits for has happened */
void http_xfer_notify(http_xfer *x);
/* lift curl's pauses but the ones still needed (receiving while a stream's buffer is full,
** sending while body_file's next block is being read) */
void http_xfer_unpause(http_xfer *x);
/* the transfer made progress (bytes received, body taken): restarts the idle clock */
void http_xfer_activity(http_xfer *x);
/* opening or running: the task has more to wait for */
static inline int http_xfer_pending(const http_xfer *x) {
  return x->state == XF_OPENING || x->state == XF_RUNNING;
}
/* [-0, +1, m] {running=, pooled=, sockets=, connections=} */
void http_push_stats(lua_State *L);
/* limits on connections (0 = no limit) and on idle connections kept; -1 leaves one as it is */
void http_configure(long max_host, long max_total, long max_cached);

/* ---- http.c ---- */
/* [-0, +0, v] the open transfer at idx */
http_xfer *http_xfer_check(lua_State *L, int idx);
/* [-0, +0, y] suspend until `what` happened on x; k runs with ctx = the transfer's index */
int http_xfer_wait(lua_State *L, http_xfer *x, int what, int idx, lua_KFunction k);

/* ---- setup.c ---- */
/* [-0, +0, v] configure x->easy from the spec table at `spec`; values whose memory curl
** borrows are anchored in a table in uservalue 1 of the transfer userdata at `ud` (made on
** first use). */
void http_setup(lua_State *L, int spec, int ud, http_xfer *x);

/* ---- response.c ---- */
size_t http_on_write(char *p, size_t size, size_t n, void *ud);
size_t http_on_header(char *p, size_t size, size_t n, void *ud);
/* [-0, +1, m] the headers of the current response as {lowercase name = value} */
void http_push_headers(lua_State *L, http_xfer *x);
/* [-0, +1, m] {status=, headers=, body=, version=} of a finished transfer */
void http_push_response(lua_State *L, http_xfer *x);
/* [-0, +1, m] the structured error of a failed transfer */
void http_push_error(lua_State *L, http_xfer *x);
/* did the transfer end in failure (curl error, body too large, unreadable body_file)? */
int http_xfer_failed(http_xfer *x);

/* ---- upload.c: body_file, opened and read on libuv's thread pool ----
** Reads run ahead of curl into two buffers; curl's read callback only copies, and pauses the
** upload (CURL_READFUNC_PAUSE) when the next block has not arrived yet. */
/* start opening path (x->state becomes XF_OPENING) to send `length` bytes from `offset` (length
** -1: to the end); 0, or -1 when out of memory */
int http_upload_open(http_xfer *x, uv_loop_t *loop, const char *path, int64_t offset, int64_t length);
size_t http_on_read(char *p, size_t size, size_t n, void *ud);
int http_on_seek(void *ud, curl_off_t offset, int origin);
/* is the upload paused waiting for a block (or for the task's next chunk)? */
int http_upload_paused(const http_xfer *x);
/* the transfer lets go of its upload: the file is closed once no read is in flight */
void http_upload_detach(http_xfer *x);

/* ---- feed.c: body_source, a body the task writes in chunks ---- */
size_t http_on_feed(char *p, size_t size, size_t n, void *ud);
int http_on_feed_seek(void *ud, curl_off_t offset, int origin);
/* t:write(chunk | nil) -> true, or false when the transfer is already over */
int http_feed_write(lua_State *L);

/* ---- secret.c: secret_fields ---- */
typedef struct http_secret_value { char *bytes; size_t len; } http_secret_value;
/* [-0, +0, v] the names of spec.secret_fields (at spec) into x */
void http_secret_setup(lua_State *L, int spec, http_xfer *x);
/* the finished body's string values of those members moved out into x->secrets, the body left
** with "<redacted #N>" in their place; the original bytes wiped. Sets bad_secret or nomem. */
void http_secret_split(http_xfer *x);
/* [-0, +1, m] the secrets split out, as a list of opsh.secret */
void http_secret_push(lua_State *L, http_xfer *x);
/* forget (and wipe) the names and the values split out */
void http_secret_free(http_xfer *x);
/* room for more bytes in a body that may hold secrets: grows without leaving copies behind */
int http_secret_reserve(byte_buf *b, size_t more);

#endif
