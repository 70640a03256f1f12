/*
** curl.h — libcurl, resolved when opsh.http is first required (engine/dynlib.c says why).
** Every curl_* call in the binding goes through the opsh_curl table; the types come from
** curl.h itself (__typeof__), so a wrong signature cannot creep in.
*/
#ifndef opsh_http_curl_h
#define opsh_http_curl_h

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include "opsh.h"

#define OPSH_CURL_FUNCS(X) \
  X(curl_global_init) X(curl_version_info) X(curl_free) X(curl_slist_append) X(curl_slist_free_all) \
  X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_cleanup) X(curl_easy_reset) \
  X(curl_easy_pause) X(curl_easy_escape) X(curl_easy_strerror) \
  X(curl_share_init) X(curl_share_setopt) X(curl_share_cleanup) \
  X(curl_multi_init) X(curl_multi_setopt) X(curl_multi_socket_action) X(curl_multi_assign) \
  X(curl_multi_add_handle) X(curl_multi_remove_handle) X(curl_multi_info_read) X(curl_multi_strerror) \
  X(curl_multi_cleanup)

#define OPSH_CURL_SLOT(name) __typeof__(name) *name;
struct opsh_curl_api { OPSH_CURL_FUNCS(OPSH_CURL_SLOT) };
extern struct opsh_curl_api opsh_curl;

/* [-0, +0, v] load libcurl (once); raises {kind="dependency"} when it cannot */
void opsh_curl_load(lua_State *L);

#ifndef OPSH_CURL_REAL_NAMES
/* curl.h's own argument-count macros for these four, replaced by the table's */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_share_setopt
#undef curl_multi_setopt
#define curl_global_init opsh_curl.curl_global_init
#define curl_version_info opsh_curl.curl_version_info
#define curl_free opsh_curl.curl_free
#define curl_slist_append opsh_curl.curl_slist_append
#define curl_slist_free_all opsh_curl.curl_slist_free_all
#define curl_easy_init opsh_curl.curl_easy_init
#define curl_easy_setopt opsh_curl.curl_easy_setopt
#define curl_easy_getinfo opsh_curl.curl_easy_getinfo
#define curl_easy_cleanup opsh_curl.curl_easy_cleanup
#define curl_easy_reset opsh_curl.curl_easy_reset
#define curl_easy_pause opsh_curl.curl_easy_pause
#define curl_easy_escape opsh_curl.curl_easy_escape
#define curl_easy_strerror opsh_curl.curl_easy_strerror
#define curl_share_init opsh_curl.curl_share_init
#define curl_share_setopt opsh_curl.curl_share_setopt
#define curl_share_cleanup opsh_curl.curl_share_cleanup
#define curl_multi_init opsh_curl.curl_multi_init
#define curl_multi_setopt opsh_curl.curl_multi_setopt
#define curl_multi_socket_action opsh_curl.curl_multi_socket_action
#define curl_multi_assign opsh_curl.curl_multi_assign
#define curl_multi_add_handle opsh_curl.curl_multi_add_handle
#define curl_multi_remove_handle opsh_curl.curl_multi_remove_handle
#define curl_multi_info_read opsh_curl.curl_multi_info_read
#define curl_multi_strerror opsh_curl.curl_multi_strerror
#define curl_multi_cleanup opsh_curl.curl_multi_cleanup
#endif

#endif
