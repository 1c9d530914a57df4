/* The echo step both C peers share (benches/peers/libev_peer.c and
 * libevent_peer.c): what a readable or writable connection does, apart
 * from how each library is told to watch it. */
#ifndef REACTOR_BENCH_ECHO_H
#define REACTOR_BENCH_ECHO_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes read but not yet written back. */
struct pending {
    char *buf;
    size_t len, cap;
};

/* Writes what is queued: 1 when all of it went, 0 when the socket is full,
 * -1 when the connection failed. */
static int pending_flush(int fd, struct pending *p)
{
    while (p->len > 0) {
        ssize_t k = write(fd, p->buf, p->len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN)
            return 0;
        if (k <= 0)
            return -1;
        memmove(p->buf, p->buf + k, p->len - (size_t)k);
        p->len -= (size_t)k;
    }
    return 1;
}

/* One read, written straight back; what the socket did not take is
 * queued. Returns -1 to close, 1 when something is queued (watch for
 * writability), 0 otherwise. */
static int echo_once(int fd, char *scratch, size_t size, struct pending *p)
{
    ssize_t n = read(fd, scratch, size);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return -1;
    ssize_t k = write(fd, scratch, (size_t)n);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        k = 0;
    if (k < 0)
        return -1;
    if (k == n)
        return 0;
    size_t rest = (size_t)(n - k);
    if (p->cap < rest) {
        char *grown = realloc(p->buf, rest);
        if (!grown)
            return -1;
        p->buf = grown;
        p->cap = rest;
    }
    memcpy(p->buf, scratch + k, rest);
    p->len = rest;
    return 1;
}

#endif
