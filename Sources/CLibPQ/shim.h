#ifndef ROLLGATE_CLIBPQ_SHIM_H
#define ROLLGATE_CLIBPQ_SHIM_H
/* libpq, PostgreSQL's own client library (Debian's libpq-dev): the only C the PostgreSQL
   store touches. */
#include <libpq-fe.h>
#endif
