/*
** feed.c — body_source: a request body the task writes in chunks while the transfer runs
** (a generator: Blob's blocks read from a pipe, a pg_dump stream). t:write(chunk) queues the
** chunk for curl's read callback and suspends the task while more than HTTP_FEED_HIGH_WATER is
** queued, so a fast producer waits for the network instead of filling memory; the callback
** pauses the upload when the queue is empty and the next write resumes it. t:write(nil) ends
** the body. Such a body cannot be sent twice: curl may rewind it only before taking any of it.
*/
#include <string.h>
#include "http.h"

size_t http_on_feed(char *p, size_t size, size_t n, void *ud) {
  http_xfer *x = ud;
  size_t want = size * n, avail = x->feed_buf.len - x->feed_pos;
  if (avail == 0) {
    if (x->feed_eof) return 0;
    x->feed_paused = 1;
    http_xfer_notify(x);   /* a writer waiting for room has it */
    return CURL_READFUNC_PAUSE;
  }
  size_t k = avail < want ? avail : want;
  memcpy(p, x->feed_buf.data + x->feed_pos, k);
  x->feed_pos += k;
  x->feed_taken += (curl_off_t)k;
  if (x->feed_pos == x->feed_buf.len) x->feed_pos = x->feed_buf.len = 0;
  http_xfer_activity(x);
  http_xfer_notify(x);
  return k;
}

int http_on_feed_seek(void *ud, curl_off_t offset, int origin) {
  http_xfer *x = ud;
  /* curl rewinds a body to send it again on a new connection: possible only if none of it went */
  if (origin == SEEK_SET && offset == 0 && x->feed_taken == 0) return CURL_SEEKFUNC_OK;
  return CURL_SEEKFUNC_CANTSEEK;
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  http_xfer *x = http_xfer_check(L, 1);
  if (!http_xfer_pending(x)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (lua_isnoneornil(L, 2)) {
    x->feed_eof = 1;
  } else {
    if (x->feed_buf.len - x->feed_pos >= HTTP_FEED_HIGH_WATER)
      return http_xfer_wait(L, x, WAIT_WRITE, 1, write_k);
    size_t len;
    const char *chunk = lua_tolstring(L, 2, &len);
    if (x->feed_pos > 0) {   /* move what is left to the front before growing */
      memmove(x->feed_buf.data, x->feed_buf.data + x->feed_pos, x->feed_buf.len - x->feed_pos);
      x->feed_buf.len -= x->feed_pos;
      x->feed_pos = 0;
    }
    if (byte_buf_add(&x->feed_buf, chunk, len) != 0) return opsh_error(L, "protocol", "out of memory");
  }
  if (x->feed_paused && x->state == XF_RUNNING) {
    x->feed_paused = 0;
    http_xfer_unpause(x);   /* may take the chunk at once */
  }
  lua_pushboolean(L, 1);
  return 1;
}

int http_feed_write(lua_State *L) {
  http_xfer *x = http_xfer_check(L, 1);
  if (!x->feed) return opsh_error(L, "usage", "http transfer: write needs a body_source request");
  if (x->feed_eof) return opsh_error(L, "usage", "http transfer: the body was already ended");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TSTRING);
  lua_settop(L, 2);
  return write_k(L, LUA_OK, 0);
}
