#ifndef ROLLGATE_CMICROHTTPD_ERRORS_H
#define ROLLGATE_CMICROHTTPD_ERRORS_H
/* libmicrohttpd answers requests it cannot parse (a bad request line or header, headers
   larger than its memory limit, an unknown HTTP version) with HTML pages compiled into the
   library. This target replaces those answers with rollgate's JSON error body; see
   errors.c for how. */
#include <microhttpd.h>

/* Queues one of rollgate's own responses (every response the server makes goes through
   here, never through MHD_queue_response directly). */
enum MHD_Result rollgate_mhd_queue(struct MHD_Connection *connection, unsigned int status,
                                   struct MHD_Response *response);

/* How many of libmicrohttpd's own error answers were replaced (for tests). */
unsigned long rollgate_mhd_replaced_errors(void);
#endif
