#ifndef ROLLGATE_CLIBPQ_H
#define ROLLGATE_CLIBPQ_H
/* libpq, PostgreSQL's own client library, loaded with dlopen the first time rollgate opens a
   PostgreSQL database (`migrate`, `copy-database`): a server on SQLite keeps libpq and its
   TLS, Kerberos and LDAP libraries out of its memory, and a host without PostgreSQL needs no
   libpq5. Types and constants come from Debian's libpq-dev headers; each function below is
   libpq's own of the same name without the prefix. */
#include <postgresql/libpq-fe.h>

/* Loads libpq.so.5 (or $ROLLGATE_LIBPQ) once; 0 when ready, else -1 and
   rollgate_pq_load_error() says why. Call it before any function below. */
int rollgate_pq_load(void);
const char *rollgate_pq_load_error(void);

PGconn * rollgate_PQconnectdb(const char *conninfo);
void rollgate_PQfinish(PGconn *conn);
ConnStatusType rollgate_PQstatus(const PGconn *conn);
char * rollgate_PQerrorMessage(const PGconn *conn);
int rollgate_PQbackendPID(const PGconn *conn);
int rollgate_PQsocket(const PGconn *conn);
PQnoticeProcessor rollgate_PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg);
PGresult * rollgate_PQexec(PGconn *conn, const char *query);
PGresult * rollgate_PQexecParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes, const char *const *paramValues, const int *paramLengths, const int *paramFormats, int resultFormat);
ExecStatusType rollgate_PQresultStatus(const PGresult *res);
char * rollgate_PQresultErrorField(const PGresult *res, int fieldcode);
void rollgate_PQclear(PGresult *res);
int rollgate_PQntuples(const PGresult *res);
int rollgate_PQnfields(const PGresult *res);
char * rollgate_PQfname(const PGresult *res, int field_num);
char * rollgate_PQgetvalue(const PGresult *res, int tup_num, int field_num);
int rollgate_PQgetisnull(const PGresult *res, int tup_num, int field_num);
char * rollgate_PQcmdTuples(PGresult *res);
int rollgate_PQconsumeInput(PGconn *conn);
PGnotify * rollgate_PQnotifies(PGconn *conn);
void rollgate_PQfreemem(void *ptr);
#endif
