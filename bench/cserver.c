/* A minimal C libmicrohttpd server doing what rollgate does for GET /api/v1/runs/{id}
 * (a SQLite point read of the run and its steps, the same JSON out, byte for byte) and /healthz, as the
 * baseline for bench/http.sh. Not part of rollgate.
 *   cc -O2 -o cserver cserver.c -lmicrohttpd -lsqlite3
 *   cc -O2 -DLEAVE_READ_OPEN -o cserver-held cserver.c -lmicrohttpd -lsqlite3   (the old read, see run_json)
 *   ./cserver PORT DATABASE */
#include <microhttpd.h>
#include <sqlite3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *db_path;
static __thread sqlite3 *db;   /* one read connection per MHD thread */

static sqlite3 *conn(void) {
    if (!db) {
        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        sqlite3_busy_timeout(db, 5000);
    }
    return db;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) { *cap = (*len + n + 1) * 2; *buf = realloc(*buf, *cap); }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static void text_or_null(char *out, size_t size, sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) snprintf(out, size, "null");
    else snprintf(out, size, "\"%s\"", sqlite3_column_text(st, col));
}

/* Milliseconds since the epoch as RFC 3339 UTC with milliseconds, quoted, or null. */
static void format_time(char *out, size_t size, long long ms) {
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "\"%s.%03lldZ\"", date, ms % 1000);
}

static void time_or_null(char *out, size_t size, sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) { snprintf(out, size, "null"); return; }
    format_time(out, size, sqlite3_column_int64(st, col));
}

static __thread sqlite3_stmt *run_st, *step_st, *begin_st, *commit_st;

static char *run_json_read(long long id);

/* The run and its steps in one read transaction, ended before answering, as rollgate reads
 * them: one snapshot, and no read left open between requests. (Until 2026-11-25 this server
 * left the run statement un-reset after its row, so each thread kept its read transaction open
 * from one request to the next: SQLite then skipped the lock and unlock system calls a read
 * transaction costs, and the snapshot stayed pinned, holding back WAL checkpoints.) */
static char *run_json(long long id) {
#ifdef LEAVE_READ_OPEN
    /* The old way, kept to compare with (bench/http.sh builds both): no BEGIN/COMMIT, the
     * run statement left holding its read until this thread's next request. */
    return run_json_read(id);
#endif
    sqlite3 *c = conn();
    if (!begin_st) sqlite3_prepare_v2(c, "BEGIN", -1, &begin_st, NULL);
    if (!commit_st) sqlite3_prepare_v2(c, "COMMIT", -1, &commit_st, NULL);
    sqlite3_step(begin_st);
    sqlite3_reset(begin_st);
    char *body = run_json_read(id);
    sqlite3_reset(run_st);
    sqlite3_reset(step_st);
    sqlite3_step(commit_st);
    sqlite3_reset(commit_st);
    return body;
}

static char *run_json_read(long long id) {
    sqlite3 *c = conn();
    if (!run_st) sqlite3_prepare_v2(c, "SELECT id, service, version, reason, requested_by, status, created_at, started_at, finished_at, error, cancel_requested, kind, wait_for_lock, interruptions, rollback_to FROM runs WHERE id = ?", -1, &run_st, NULL);
    if (!step_st) sqlite3_prepare_v2(c, "SELECT id, target_id, target_port, phase, status, started_at, finished_at, error FROM steps WHERE run_id = ? ORDER BY id", -1, &step_st, NULL);
    sqlite3_reset(run_st);
    sqlite3_bind_int64(run_st, 1, id);
    if (sqlite3_step(run_st) != SQLITE_ROW) return NULL;
    /* The same fields, order and formats as rollgate's run JSON. */
    char *buf = NULL; size_t len = 0, cap = 0; char tmp[16384], reason[512], err[512], created[40], started[40], finished[40];
    text_or_null(reason, sizeof reason, run_st, 3);
    text_or_null(err, sizeof err, run_st, 9);
    time_or_null(created, sizeof created, run_st, 6);
    time_or_null(started, sizeof started, run_st, 7);
    time_or_null(finished, sizeof finished, run_st, 8);
    const char *status = (const char *)sqlite3_column_text(run_st, 5);
    snprintf(tmp, sizeof tmp, "{\"id\":%lld,\"service\":\"%s\",\"version\":\"%s\",\"reason\":%s,\"requested_by\":\"%s\",\"status\":\"%s\",\"created_at\":%s,\"started_at\":%s,\"finished_at\":%s,\"error\":%s,\"cancel_requested\":%s,\"kind\":\"%s\",\"wait_for_lock\":%s,\"interruptions\":%lld,\"current_target\":null,\"steps\":[",
             sqlite3_column_int64(run_st, 0), sqlite3_column_text(run_st, 1), sqlite3_column_text(run_st, 2), reason,
             sqlite3_column_text(run_st, 4), status, created, started, finished, err,
             sqlite3_column_int64(run_st, 10) ? "true" : "false", sqlite3_column_text(run_st, 11),
             sqlite3_column_int64(run_st, 12) ? "true" : "false", sqlite3_column_int64(run_st, 13));
    append(&buf, &len, &cap, tmp);
    sqlite3_reset(step_st);
    sqlite3_bind_int64(step_st, 1, id);
    int first = 1;
    /* Each target's time out of service: its first drain start to its last successful restore end. */
    struct { char id[128]; long long port, from, until; } out[64];
    int outs = 0;
    while (sqlite3_step(step_st) == SQLITE_ROW) {
        const char *target = (const char *)sqlite3_column_text(step_st, 1);
        long long port = sqlite3_column_int64(step_st, 2);
        const char *phase = (const char *)sqlite3_column_text(step_st, 3);
        int k = 0;
        while (k < outs && !(strcmp(out[k].id, target) == 0 && out[k].port == port)) k++;
        if (strcmp(phase, "drain") == 0 && k == outs && outs < 64) {
            snprintf(out[outs].id, sizeof out[outs].id, "%s", target);
            out[outs].port = port; out[outs].from = sqlite3_column_int64(step_st, 5); out[outs].until = -1;
            outs++;
        } else if (strcmp(phase, "restore") == 0 && k < outs && strcmp((const char *)sqlite3_column_text(step_st, 4), "succeeded") == 0
                   && sqlite3_column_type(step_st, 6) != SQLITE_NULL && sqlite3_column_int64(step_st, 6) >= out[k].from) {
            out[k].until = sqlite3_column_int64(step_st, 6);
        }
        char s_started[40], s_finished[40], s_err[512];
        time_or_null(s_started, sizeof s_started, step_st, 5);
        time_or_null(s_finished, sizeof s_finished, step_st, 6);
        text_or_null(s_err, sizeof s_err, step_st, 7);
        snprintf(tmp, sizeof tmp, "%s{\"id\":%lld,\"target_id\":\"%s\",\"target_port\":%lld,\"phase\":\"%s\",\"status\":\"%s\",\"started_at\":%s,\"finished_at\":%s,\"error\":%s}",
                 first ? "" : ",", sqlite3_column_int64(step_st, 0), sqlite3_column_text(step_st, 1),
                 sqlite3_column_int64(step_st, 2), sqlite3_column_text(step_st, 3), sqlite3_column_text(step_st, 4),
                 s_started, s_finished, s_err);
        append(&buf, &len, &cap, tmp);
        first = 0;
    }
    append(&buf, &len, &cap, "],\"out_of_service\":[");
    long long total = 0;
    for (int k = 0; k < outs; k++) {
        char from[40], until[40], ms[32];
        format_time(from, sizeof from, out[k].from);
        if (out[k].until >= 0) {
            format_time(until, sizeof until, out[k].until);
            snprintf(ms, sizeof ms, "%lld", out[k].until - out[k].from);
            total += out[k].until - out[k].from;
        } else {
            snprintf(until, sizeof until, "null");
            snprintf(ms, sizeof ms, "null");
        }
        snprintf(tmp, sizeof tmp, "%s{\"target_id\":\"%s\",\"target_port\":%lld,\"from\":%s,\"until\":%s,\"ms\":%s}",
                 k ? "," : "", out[k].id, out[k].port, from, until, ms);
        append(&buf, &len, &cap, tmp);
    }
    char rollback[512];
    text_or_null(rollback, sizeof rollback, run_st, 14);
    snprintf(tmp, sizeof tmp, "],\"out_of_service_ms\":%lld,\"rolled_back_to\":%s}", total, rollback);
    append(&buf, &len, &cap, tmp);
    return buf;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)cls; (void)method; (void)version; (void)upload;
    static int first_call;
    if (*state == NULL) { *state = &first_call; return MHD_YES; }   /* answer on the second call */
    *upload_size = 0;
    struct MHD_Response *r;
    unsigned int status = 200;
    if (strcmp(url, "/healthz") == 0) {
        static const char ok[] = "{\"status\":\"ok\"}";
        r = MHD_create_response_from_buffer(sizeof ok - 1, (void *)ok, MHD_RESPMEM_PERSISTENT);
    } else if (strncmp(url, "/api/v1/runs/", 13) == 0) {
        char *body = run_json(atoll(url + 13));
        if (!body) { status = 404; body = strdup("{\"error\":{\"code\":\"run_not_found\",\"message\":\"no run\"}}"); }
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    } else {
        status = 404;
        static const char nf[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no route\"}}";
        r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result result = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return result;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PORT DATABASE\n", argv[0]); return 2; }
    db_path = argv[2];
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]),
                                            NULL, NULL, answer, NULL,
                                            MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END);
    if (!d) { perror("MHD_start_daemon"); return 1; }
    printf("cserver listening on %s\n", argv[1]);
    fflush(stdout);
    pause();
    MHD_stop_daemon(d);
    return 0;
}
