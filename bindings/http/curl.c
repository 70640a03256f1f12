/* curl.c — the opsh_curl table and its loader (see curl.h). */
#define OPSH_CURL_REAL_NAMES
#include "curl.h"

struct opsh_curl_api opsh_curl;

#define OPSH_CURL_NAME(name) #name,

void opsh_curl_load(lua_State *L) {
  static const char *const sonames[] = {"libcurl.so.4", NULL};
  static const char *const names[] = {OPSH_CURL_FUNCS(OPSH_CURL_NAME)};
  static int loaded;
  opsh_dynlib_load(L, sonames, names, (void **)&opsh_curl, (int)(sizeof names / sizeof *names), &loaded);
}
