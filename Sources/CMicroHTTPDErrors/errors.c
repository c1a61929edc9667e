/* libmicrohttpd 0.9.x has no option for the bodies of the errors it answers by itself (they
   are compiled in, as HTML). It sends each through its exported MHD_queue_response, called
   through the PLT (the library is not linked -Bsymbolic), so this executable's own
   definition of that symbol takes those calls: one that does not come from rollgate
   (rollgate_mhd_queue marks its own calls per thread) is one of the library's error answers,
   and is sent as {"error": {"code", "message"}} with Content-Type application/json instead,
   with the same status. Everything else passes to the library's MHD_queue_response,
   found with dlsym(RTLD_NEXT). Tests send the malformed requests and read the answers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>
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

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status,
                                   struct MHD_Response *response) {
    queue_function queue = library_queue();
    if (queue == NULL) return MHD_NO;
    if (rollgate_queuing) return queue(connection, status, response);
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
