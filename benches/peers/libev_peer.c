/* libev 4.33 peers for the benchmarks in docs/benchmarks.md, written the way
 * libev's own manual (ev.pod) writes a watcher: ev_io for descriptors,
 * ev_timer for timeouts, one default-style loop forced onto epoll.
 *
 * Every entry point is called from Rust (benches/src/peers.rs); timings are
 * taken by the caller except where a function returns nanoseconds. */
#define _GNU_SOURCE
#include <ev.h>
#include "chain.h"
#include "echo.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- B1 dispatch: libevent's bench.c shape (read a byte, write the next) */

struct b1 {
    struct ev_loop *loop;
    ev_io *watchers;
    struct chain chain;
};

static void b1_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct b1 *b = ev_userdata(loop);
    (void)revents;
    chain_read(&b->chain, w->fd, (size_t)(w - b->watchers));
}

struct b1 *reactor_bench_libev_b1_new(size_t n)
{
    struct b1 *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->loop = ev_loop_new(EVBACKEND_EPOLL);
    b->watchers = calloc(n ? n : 1, sizeof *b->watchers);
    if (!b->loop || !b->watchers) {
        free(b->watchers);
        free(b);
        return NULL;
    }
    b->chain.n = n;
    ev_set_userdata(b->loop, b);
    return b;
}

/* Watches the n read ends (what bench.c's event_add loop does). */
void reactor_bench_libev_b1_setup(struct b1 *b, const int *readers)
{
    for (size_t i = 0; i < b->chain.n; i++) {
        ev_io_init(&b->watchers[i], b1_read_cb, readers[i], EV_READ);
        ev_io_start(b->loop, &b->watchers[i]);
    }
}

void reactor_bench_libev_b1_teardown(struct b1 *b)
{
    for (size_t i = 0; i < b->chain.n; i++)
        ev_io_stop(b->loop, &b->watchers[i]);
    /* libev applies fd changes lazily: let them reach the kernel now. */
    ev_run(b->loop, EVRUN_NOWAIT);
}

/* Runs a chain the caller started (`fired` bytes written, `writes` still
 * to write) until every byte is read; returns the bytes read. */
size_t reactor_bench_libev_b1_run(struct b1 *b, const int *writers, size_t fired, size_t writes)
{
    chain_start(&b->chain, writers, fired, writes);
    while (b->chain.count < b->chain.fired)
        ev_run(b->loop, EVRUN_ONCE);
    return b->chain.count;
}

void reactor_bench_libev_b1_free(struct b1 *b)
{
    ev_loop_destroy(b->loop);
    free(b->watchers);
    free(b);
}

/* ---- B2 echo: one ev_io per connection, read, write back --------------- */

struct conn {
    ev_io io;
    struct pending out;
};

static char echo_buf[64 * 1024];

static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->out.buf);
    free(c);
}

/* Watches for `what` alone (read, or write while output is queued). */
static void conn_watch(struct ev_loop *loop, ev_io *w, int what)
{
    ev_io_stop(loop, w);
    ev_io_set(w, w->fd, what);
    ev_io_start(loop, w);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    int r = revents & EV_WRITE ? pending_flush(w->fd, &c->out)
                               : echo_once(w->fd, echo_buf, sizeof echo_buf, &c->out);
    if (r < 0)
        conn_close(loop, c);
    else if (r > 0)
        conn_watch(loop, w, revents & EV_WRITE ? EV_READ : EV_WRITE);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

/* Serves echo on a non-blocking listening socket until killed. */
int reactor_bench_libev_echo(int listen_fd)
{
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_io acceptor;
    if (!loop)
        return -1;
    ev_io_init(&acceptor, accept_cb, listen_fd, EV_READ);
    ev_io_start(loop, &acceptor);
    ev_run(loop, 0);
    return 0;
}

/* ---- B5 timers: ev_timer start / stop / expire ------------------------- */

struct b5 {
    struct ev_loop *loop;
    ev_timer *timers;
    const double *after;
    size_t n, fired;
};

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct b5 *t = ev_userdata(loop);
    (void)w;
    (void)revents;
    t->fired++;
}

struct b5 *reactor_bench_libev_b5_new(const double *after, size_t n)
{
    struct b5 *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->loop = ev_loop_new(EVBACKEND_EPOLL);
    t->timers = calloc(n ? n : 1, sizeof *t->timers);
    if (!t->loop || !t->timers) {
        free(t->timers);
        free(t);
        return NULL;
    }
    t->after = after;
    t->n = n;
    ev_set_userdata(t->loop, t);
    for (size_t i = 0; i < n; i++)
        ev_timer_init(&t->timers[i], timer_cb, after[i], 0.);
    return t;
}

/* Starts every timer (its own random timeout); returns the ns it took. */
long long reactor_bench_libev_b5_insert(struct b5 *t)
{
    long long start = now_ns();
    for (size_t i = 0; i < t->n; i++) {
        ev_timer_set(&t->timers[i], t->after[i], 0.);
        ev_timer_start(t->loop, &t->timers[i]);
    }
    return now_ns() - start;
}

long long reactor_bench_libev_b5_cancel(struct b5 *t)
{
    long long start = now_ns();
    for (size_t i = 0; i < t->n; i++)
        ev_timer_stop(t->loop, &t->timers[i]);
    return now_ns() - start;
}

/* Starts every timer due at once (untimed), then times one loop pass that
 * fires them all; returns the ns, or -1 if not all fired. */
long long reactor_bench_libev_b5_expire(struct b5 *t)
{
    ev_now_update(t->loop);
    for (size_t i = 0; i < t->n; i++) {
        ev_timer_set(&t->timers[i], 0., 0.);
        ev_timer_start(t->loop, &t->timers[i]);
    }
    t->fired = 0;
    long long start = now_ns();
    ev_run(t->loop, EVRUN_NOWAIT);
    long long took = now_ns() - start;
    return t->fired == t->n ? took : -1;
}

void reactor_bench_libev_b5_free(struct b5 *t)
{
    for (size_t i = 0; i < t->n; i++)
        ev_timer_stop(t->loop, &t->timers[i]);
    ev_loop_destroy(t->loop);
    free(t->timers);
    free(t);
}

/* ---- B8 idle loop: EVRUN_NOWAIT with one never-ready ev_io -------------- */

struct b8 {
    struct ev_loop *loop;
    ev_io io;
    ev_timer *timers;
    size_t ntimers;
};

static void never_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void never_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

struct b8 *reactor_bench_libev_b8_new(int fd, size_t ntimers)
{
    struct b8 *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->loop = ev_loop_new(EVBACKEND_EPOLL);
    b->timers = calloc(ntimers ? ntimers : 1, sizeof *b->timers);
    if (!b->loop || !b->timers) {
        free(b->timers);
        free(b);
        return NULL;
    }
    ev_io_init(&b->io, never_cb, fd, EV_READ);
    ev_io_start(b->loop, &b->io);
    b->ntimers = ntimers;
    for (size_t i = 0; i < ntimers; i++) {
        ev_timer_init(&b->timers[i], never_timer_cb, 3600. + (double)i, 0.);
        ev_timer_start(b->loop, &b->timers[i]);
    }
    ev_run(b->loop, EVRUN_NOWAIT);
    return b;
}

void reactor_bench_libev_b8_iter(struct b8 *b, size_t iters)
{
    for (size_t i = 0; i < iters; i++)
        ev_run(b->loop, EVRUN_NOWAIT);
}

void reactor_bench_libev_b8_free(struct b8 *b)
{
    ev_io_stop(b->loop, &b->io);
    for (size_t i = 0; i < b->ntimers; i++)
        ev_timer_stop(b->loop, &b->timers[i]);
    ev_loop_destroy(b->loop);
    free(b->timers);
    free(b);
}

/* Bytes libev keeps per watched descriptor: the ev_io the caller owns plus
 * its entry in the loop's fd array (ANFD) and epoll's event buffer. */
size_t reactor_bench_libev_io_size(void)
{
    return sizeof(ev_io);
}
