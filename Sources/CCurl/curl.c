#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "CCurl.h"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = -1;
static char error[512] = "libcurl was not loaded";

static void load(void) {
    const char *name = getenv("ROLLGATE_LIBCURL");
    if (!name || !*name) name = "libcurl.so.4";
    void *library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, sizeof error, "cannot load %s (install libcurl4, or set ROLLGATE_LIBCURL to its path): %s", name, dlerror());
        return;
    }
#define FIND(field, name) if (!(*(void **)&curl.field = dlsym(library, name))) { \
        snprintf(error, sizeof error, "libcurl.so.4 has no %s", name); return; }
    FIND(global_init, "curl_global_init")
    FIND(easy_init, "curl_easy_init")
    FIND(easy_cleanup, "curl_easy_cleanup")
    FIND(easy_reset, "curl_easy_reset")
    FIND(easy_perform, "curl_easy_perform")
    FIND(easy_strerror, "curl_easy_strerror")
    FIND(easy_setopt, "curl_easy_setopt")
    FIND(easy_getinfo, "curl_easy_getinfo")
    FIND(slist_append, "curl_slist_append")
    FIND(slist_free_all, "curl_slist_free_all")
#undef FIND
    if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(error, sizeof error, "curl_global_init failed");
        return;
    }
    loaded = 0;
}

int rollgate_curl_load(void) { pthread_once(&once, load); return loaded; }
const char *rollgate_curl_load_error(void) { return error; }

CURL *rollgate_curl_easy_init(void) { return rollgate_curl_load() == 0 ? curl.easy_init() : NULL; }
void rollgate_curl_easy_cleanup(CURL *handle) { if (handle) curl.easy_cleanup(handle); }
void rollgate_curl_easy_reset(CURL *handle) { curl.easy_reset(handle); }
CURLcode rollgate_curl_easy_perform(CURL *handle) { return curl.easy_perform(handle); }
const char *rollgate_curl_easy_strerror(CURLcode code) { return rollgate_curl_load() == 0 ? curl.easy_strerror(code) : error; }
struct curl_slist *rollgate_curl_slist_append(struct curl_slist *list, const char *value) {
    return rollgate_curl_load() == 0 ? curl.slist_append(list, value) : list;
}
void rollgate_curl_slist_free_all(struct curl_slist *list) { if (list && rollgate_curl_load() == 0) curl.slist_free_all(list); }

CURLcode rollgate_curl_string(CURL *handle, CURLoption option, const char *value) { return curl.easy_setopt(handle, option, value); }
CURLcode rollgate_curl_long(CURL *handle, CURLoption option, long value) { return curl.easy_setopt(handle, option, value); }
CURLcode rollgate_curl_headers(CURL *handle, struct curl_slist *headers) { return curl.easy_setopt(handle, CURLOPT_HTTPHEADER, headers); }
CURLcode rollgate_curl_body(CURL *handle, const char *data, long length) {
    curl.easy_setopt(handle, CURLOPT_POSTFIELDSIZE, length);
    return curl.easy_setopt(handle, CURLOPT_COPYPOSTFIELDS, data);
}
CURLcode rollgate_curl_receivers(CURL *handle, rollgate_curl_callback body, rollgate_curl_callback header, void *context) {
    curl.easy_setopt(handle, CURLOPT_WRITEFUNCTION, body);
    curl.easy_setopt(handle, CURLOPT_WRITEDATA, context);
    curl.easy_setopt(handle, CURLOPT_HEADERFUNCTION, header);
    return curl.easy_setopt(handle, CURLOPT_HEADERDATA, context);
}
CURLcode rollgate_curl_progress(CURL *handle, rollgate_curl_progress_callback progress, void *context) {
    curl.easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, progress);
    curl.easy_setopt(handle, CURLOPT_XFERINFODATA, context);
    return curl.easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
}
long rollgate_curl_status(CURL *handle) {
    long code = 0;
    curl.easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
    return code;
}
