/* libmicrohttpd 0.9.x has no option for the bodies of the errors it answers by itself (they
   are compiled in, as HTML). It sends each through its exported MHD_queue_response, called
   through the PLT (the library is not linked -Bsymbolic), so this executable's own
   definition of that symbol takes those calls: one that does not come from rollgate
   (rollgate_mhd_queue marks its own calls per thread) is one of the library's error answers,
   and is sent as {"error": {"code", "message"}} with Content-Type application/json instead,
   with the same status. Everything else passes to the library's MHD_queue_response,
   found with dlsym(RTLD_NEXT). Tests send the malformed requests and read the answers.

   One of the library's answers is broken in 0.9.75: for a malformed or too large
   Content-Length, its state machine goes on after the error answer (connection.c,
   MHD_CONNECTION_HEADERS_RECEIVED does not check stop_with_error) and builds the status line
   and headers a second time. For that request this writes one complete answer to the socket
   itself and refuses the library's, so MHD closes the connection sending nothing more
   (under TLS nothing can be written around MHD: the connection just closes). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include "CMicroHTTPDErrors.h"

typedef enum MHD_Result (*queue_function)(struct MHD_Connection *, unsigned int, struct MHD_Response *);

static _Thread_local int rollgate_queuing = 0;
static _Atomic unsigned long replaced = 0;

static queue_function library_queue(void) {
    static _Atomic(queue_function) found = NULL;
    queue_function queue = atomic_load(&found);
    if (queue == NULL) {
        queue = (queue_function)dlsym(RTLD_NEXT, "MHD_queue_response");
        atomic_store(&found, queue);
    }
    return queue;
}

static const char *json_body(unsigned int status) {
    switch (status) {
    case 400: return "{\"error\":{\"code\":\"bad_request\",\"message\":\"the request is not valid HTTP/1.1: a malformed request line, header or chunked body\"}}";
    case 413: return "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the request body is larger than this server accepts\"}}";
    case 414: return "{\"error\":{\"code\":\"uri_too_long\",\"message\":\"the request line is longer than this server accepts\"}}";
    case 431: return "{\"error\":{\"code\":\"header_too_large\",\"message\":\"the request headers are larger than this server accepts; send fewer or shorter headers\"}}";
    case 505: return "{\"error\":{\"code\":\"http_version_not_supported\",\"message\":\"only HTTP versions 1.0 and 1.1 are served\"}}";
    default:  return "{\"error\":{\"code\":\"internal\",\"message\":\"the server could not read this request\"}}";
    }
}

/* 0 when the request's Content-Length is one MHD reads; else the status MHD answers it with
   (400 malformed, 413 past 2^64), found the way MHD finds it. */
static unsigned int bad_content_length(struct MHD_Connection *connection) {
    const char *value = NULL;
    size_t length = 0;
    if (MHD_NO != MHD_lookup_connection_value_n(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING,
                                                 strlen(MHD_HTTP_HEADER_TRANSFER_ENCODING), NULL, NULL)) return 0;
    if (MHD_NO == MHD_lookup_connection_value_n(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH,
                                                 strlen(MHD_HTTP_HEADER_CONTENT_LENGTH), &value, &length)) return 0;
    if (value == NULL || length == 0) return 400;
    uint64_t total = 0;
    for (size_t i = 0; i < length; i++) {
        if (value[i] < '0' || value[i] > '9') return 400;
        uint64_t digit = (uint64_t)(value[i] - '0');
        if (total > (UINT64_MAX - digit) / 10) return 413;
        total = total * 10 + digit;
    }
    return 0;
}

static enum MHD_Result answer_and_close(struct MHD_Connection *connection, unsigned int status) {
    const union MHD_ConnectionInfo *tls = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if ((tls == NULL || tls->tls_session == NULL) && fd != NULL) {
        const char *text = status == 413
            ? "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
              "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"Content-Length is larger than this server accepts\"}}"
            : "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 105\r\n\r\n"
              "{\"error\":{\"code\":\"bad_request\",\"message\":\"Content-Length must be a whole number of bytes (digits only)\"}}";
        (void)send(fd->connect_fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    atomic_fetch_add(&replaced, 1);
    return MHD_NO;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status,
                                   struct MHD_Response *response) {
    queue_function queue = library_queue();
    if (queue == NULL) return MHD_NO;
    if (rollgate_queuing) return queue(connection, status, response);
    unsigned int bad_length = bad_content_length(connection);
    if (bad_length != 0) return answer_and_close(connection, bad_length);
    const char *body = json_body(status);
    struct MHD_Response *json = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (json == NULL) return queue(connection, status, response);
    MHD_add_response_header(json, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result result = queue(connection, status, json);
    MHD_destroy_response(json);
    atomic_fetch_add(&replaced, 1);
    return result;
}

enum MHD_Result rollgate_mhd_queue(struct MHD_Connection *connection, unsigned int status,
                                   struct MHD_Response *response) {
    rollgate_queuing = 1;
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    rollgate_queuing = 0;
    return result;
}

unsigned long rollgate_mhd_replaced_errors(void) { return atomic_load(&replaced); }
