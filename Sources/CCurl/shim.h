#ifndef ROLLGATE_CCURL_SHIM_H
#define ROLLGATE_CCURL_SHIM_H
/* The only place libcurl's variadic curl_easy_setopt/getinfo are touched. */
#include <curl/curl.h>

typedef size_t (*rollgate_curl_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode rollgate_curl_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rollgate_curl_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rollgate_curl_headers(CURL *handle, struct curl_slist *headers) {
    return curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
}
static inline CURLcode rollgate_curl_body(CURL *handle, const char *data, long length) {
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, length);
    return curl_easy_setopt(handle, CURLOPT_COPYPOSTFIELDS, data);
}
static inline CURLcode rollgate_curl_receivers(CURL *handle, rollgate_curl_callback body, rollgate_curl_callback header, void *context) {
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, body);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, context);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, header);
    return curl_easy_setopt(handle, CURLOPT_HEADERDATA, context);
}
static inline long rollgate_curl_status(CURL *handle) {
    long code = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
    return code;
}
#endif
