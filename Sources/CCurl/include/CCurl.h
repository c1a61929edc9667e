#ifndef ROLLGATE_CCURL_H
#define ROLLGATE_CCURL_H
/* libcurl, loaded with dlopen the first time rollgate sends a request (a notification, an
   AWS call, the CLI): a server that never does keeps libcurl and its TLS, Kerberos and LDAP
   libraries out of its memory (about 3 MB). The only place libcurl's variadic
   curl_easy_setopt/getinfo are touched. Types and constants come from <curl/curl.h>. */
#include <curl/curl.h>

typedef size_t (*rollgate_curl_callback)(char *data, size_t size, size_t count, void *context);
/* Non-zero ends the transfer (CURLE_ABORTED_BY_CALLBACK). */
typedef int (*rollgate_curl_progress_callback)(void *context, curl_off_t download_total, curl_off_t downloaded,
                                               curl_off_t upload_total, curl_off_t uploaded);

/* Loads libcurl.so.4 (or $ROLLGATE_LIBCURL) and runs curl_global_init once; 0 when ready, else -1 and
   rollgate_curl_load_error() says why. Every function below calls it first. */
int rollgate_curl_load(void);
const char *rollgate_curl_load_error(void);

CURL *rollgate_curl_easy_init(void);
void rollgate_curl_easy_cleanup(CURL *handle);
/* Forgets every option set; keeps the handle's open connections and TLS sessions. */
void rollgate_curl_easy_reset(CURL *handle);
CURLcode rollgate_curl_easy_perform(CURL *handle);
const char *rollgate_curl_easy_strerror(CURLcode code);
struct curl_slist *rollgate_curl_slist_append(struct curl_slist *list, const char *value);
void rollgate_curl_slist_free_all(struct curl_slist *list);

CURLcode rollgate_curl_string(CURL *handle, CURLoption option, const char *value);
CURLcode rollgate_curl_long(CURL *handle, CURLoption option, long value);
CURLcode rollgate_curl_headers(CURL *handle, struct curl_slist *headers);
CURLcode rollgate_curl_body(CURL *handle, const char *data, long length);
CURLcode rollgate_curl_receivers(CURL *handle, rollgate_curl_callback body, rollgate_curl_callback header, void *context);
/* Called about once a second at least, and as data moves: how a transfer learns it was cancelled. */
CURLcode rollgate_curl_progress(CURL *handle, rollgate_curl_progress_callback progress, void *context);
long rollgate_curl_status(CURL *handle);
#endif
