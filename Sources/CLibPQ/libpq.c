#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "CLibPQ.h"

static struct {
    PGconn * (*PQconnectdb)(const char *conninfo);
    void (*PQfinish)(PGconn *conn);
    ConnStatusType (*PQstatus)(const PGconn *conn);
    char * (*PQerrorMessage)(const PGconn *conn);
    int (*PQbackendPID)(const PGconn *conn);
    int (*PQsocket)(const PGconn *conn);
    PQnoticeProcessor (*PQsetNoticeProcessor)(PGconn *conn, PQnoticeProcessor proc, void *arg);
    PGresult * (*PQexec)(PGconn *conn, const char *query);
    PGresult * (*PQexecParams)(PGconn *conn, const char *command, int nParams, const Oid *paramTypes, const char *const *paramValues, const int *paramLengths, const int *paramFormats, int resultFormat);
    ExecStatusType (*PQresultStatus)(const PGresult *res);
    char * (*PQresultErrorField)(const PGresult *res, int fieldcode);
    void (*PQclear)(PGresult *res);
    int (*PQntuples)(const PGresult *res);
    int (*PQnfields)(const PGresult *res);
    char * (*PQfname)(const PGresult *res, int field_num);
    char * (*PQgetvalue)(const PGresult *res, int tup_num, int field_num);
    int (*PQgetisnull)(const PGresult *res, int tup_num, int field_num);
    char * (*PQcmdTuples)(PGresult *res);
    int (*PQconsumeInput)(PGconn *conn);
    PGnotify * (*PQnotifies)(PGconn *conn);
    void (*PQfreemem)(void *ptr);
} pq;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = -1;
static char error[512] = "libpq was not loaded";

static void load(void) {
    const char *name = getenv("ROLLGATE_LIBPQ");
    if (!name || !*name) name = "libpq.so.5";
    void *library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, sizeof error, "cannot load %s (install libpq5, or set ROLLGATE_LIBPQ to its path): %s", name, dlerror());
        return;
    }
#define FIND(field) if (!(*(void **)&pq.field = dlsym(library, #field))) { \
        snprintf(error, sizeof error, "%s has no %s", name, #field); return; }
    FIND(PQconnectdb)
    FIND(PQfinish)
    FIND(PQstatus)
    FIND(PQerrorMessage)
    FIND(PQbackendPID)
    FIND(PQsocket)
    FIND(PQsetNoticeProcessor)
    FIND(PQexec)
    FIND(PQexecParams)
    FIND(PQresultStatus)
    FIND(PQresultErrorField)
    FIND(PQclear)
    FIND(PQntuples)
    FIND(PQnfields)
    FIND(PQfname)
    FIND(PQgetvalue)
    FIND(PQgetisnull)
    FIND(PQcmdTuples)
    FIND(PQconsumeInput)
    FIND(PQnotifies)
    FIND(PQfreemem)
#undef FIND
    loaded = 0;
}

int rollgate_pq_load(void) { pthread_once(&once, load); return loaded; }
const char *rollgate_pq_load_error(void) { return error; }

PGconn * rollgate_PQconnectdb(const char *conninfo) { return pq.PQconnectdb(conninfo); }
void rollgate_PQfinish(PGconn *conn) { pq.PQfinish(conn); }
ConnStatusType rollgate_PQstatus(const PGconn *conn) { return pq.PQstatus(conn); }
char * rollgate_PQerrorMessage(const PGconn *conn) { return pq.PQerrorMessage(conn); }
int rollgate_PQbackendPID(const PGconn *conn) { return pq.PQbackendPID(conn); }
int rollgate_PQsocket(const PGconn *conn) { return pq.PQsocket(conn); }
PQnoticeProcessor rollgate_PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg) { return pq.PQsetNoticeProcessor(conn, proc, arg); }
PGresult * rollgate_PQexec(PGconn *conn, const char *query) { return pq.PQexec(conn, query); }
PGresult * rollgate_PQexecParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes, const char *const *paramValues, const int *paramLengths, const int *paramFormats, int resultFormat) { return pq.PQexecParams(conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat); }
ExecStatusType rollgate_PQresultStatus(const PGresult *res) { return pq.PQresultStatus(res); }
char * rollgate_PQresultErrorField(const PGresult *res, int fieldcode) { return pq.PQresultErrorField(res, fieldcode); }
void rollgate_PQclear(PGresult *res) { pq.PQclear(res); }
int rollgate_PQntuples(const PGresult *res) { return pq.PQntuples(res); }
int rollgate_PQnfields(const PGresult *res) { return pq.PQnfields(res); }
char * rollgate_PQfname(const PGresult *res, int field_num) { return pq.PQfname(res, field_num); }
char * rollgate_PQgetvalue(const PGresult *res, int tup_num, int field_num) { return pq.PQgetvalue(res, tup_num, field_num); }
int rollgate_PQgetisnull(const PGresult *res, int tup_num, int field_num) { return pq.PQgetisnull(res, tup_num, field_num); }
char * rollgate_PQcmdTuples(PGresult *res) { return pq.PQcmdTuples(res); }
int rollgate_PQconsumeInput(PGconn *conn) { return pq.PQconsumeInput(conn); }
PGnotify * rollgate_PQnotifies(PGconn *conn) { return pq.PQnotifies(conn); }
void rollgate_PQfreemem(void *ptr) { pq.PQfreemem(ptr); }
