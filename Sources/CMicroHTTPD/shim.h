#ifndef ROLLGATE_CMICROHTTPD_SHIM_H
#define ROLLGATE_CMICROHTTPD_SHIM_H
/* The only place libmicrohttpd's variadic functions and cast macros are touched. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <microhttpd.h>

/* Starts a daemon bound to ipv4:port (port 0 picks a free one), with an internal
   epoll thread pool and suspend/resume allowed; with tls_key_pem and tls_cert_pem (PEM text,
   both or neither) it serves HTTPS through MHD's GnuTLS. Returns NULL on failure. */
static inline struct MHD_Daemon *rollgate_mhd_start(const char *ipv4, uint16_t port,
        MHD_AccessHandlerCallback handler, void *handler_cls,
        MHD_RequestCompletedCallback completed, void *completed_cls,
        unsigned int thread_pool_size, size_t connection_memory_limit,
        unsigned int connection_timeout_seconds, unsigned int connection_limit, unsigned int per_address_limit,
        MHD_NotifyConnectionCallback notify_connection, void *notify_connection_cls,
        const char *tls_key_pem, const char *tls_cert_pem) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, ipv4, &addr.sin_addr) != 1) return NULL;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL
                       | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (tls_key_pem && tls_cert_pem) {
        return MHD_start_daemon(flags | MHD_USE_TLS, port, NULL, NULL, handler, handler_cls,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
            MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
            MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
            MHD_OPTION_CONNECTION_LIMIT, connection_limit,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_address_limit,
            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, notify_connection_cls,
            MHD_OPTION_HTTPS_MEM_KEY, tls_key_pem,
            MHD_OPTION_HTTPS_MEM_CERT, tls_cert_pem,
            MHD_OPTION_END);
    }
    return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
        MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_address_limit,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, notify_connection_cls,
        MHD_OPTION_END);
}

/* The connection's socket (for the request deadline, which shuts it down), or -1. */
static inline int rollgate_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

/* What the connection-notify callback stored in the connection's socket context, or NULL. */
static inline void *rollgate_mhd_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* The client's IPv4 address in host byte order (0 when it is not IPv4). */
static inline uint32_t rollgate_mhd_client_ipv4(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL || info->client_addr->sa_family != AF_INET) return 0;
    return ntohl(((const struct sockaddr_in *)info->client_addr)->sin_addr.s_addr);
}

static inline uint16_t rollgate_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* A response whose body a callback produces as the client reads (Server-Sent Events). */
static inline struct MHD_Response *rollgate_mhd_stream_response(MHD_ContentReaderCallback reader, void *cls,
        MHD_ContentReaderFreeCallback free_cls) {
    return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, cls, free_cls);
}
static inline ssize_t rollgate_mhd_end_of_stream(void) { return MHD_CONTENT_READER_END_OF_STREAM; }

static inline enum MHD_Result rollgate_mhd_yes(void) { return MHD_YES; }
static inline enum MHD_Result rollgate_mhd_no(void) { return MHD_NO; }
#endif
