/* libevent 2.1.12 peers for the benchmarks in docs/benchmarks.md, written
 * the way libevent's book and its sample/ programs write them: one
 * event_base forced onto epoll with event_config_avoid_method, event_new
 * with EV_PERSIST callbacks for descriptors, evtimer_add/evtimer_del for
 * timeouts, event_base_loop(EVLOOP_NONBLOCK) for the idle loop (its
 * test/bench_loop.c shape), and test/bench.c's shape for dispatch.
 *
 * Every entry point is called from Rust (benches/src/peers.rs). */
#define _GNU_SOURCE
#include <event2/event.h>
#include <event2/event_struct.h>
#include "chain.h"
#include "echo.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/socket.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* An epoll base, as bench.c's `-m epoll` asks for it. */
static struct event_base *epoll_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    if (!cfg)
        return NULL;
    event_config_avoid_method(cfg, "select");
    event_config_avoid_method(cfg, "poll");
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* ---- B1 dispatch: test/bench.c (event_assign'd events, EV_PERSIST) ----- */

struct b1 {
    struct event_base *base;
    struct event *events; /* n events, assigned in setup */
    struct chain chain;
};

/* bench.c keeps its counters in globals; so does this, for the one run. */
static struct b1 *current_b1;

static void b1_cb(evutil_socket_t fd, short which, void *arg)
{
    (void)which;
    chain_read(&current_b1->chain, fd, (size_t)(uintptr_t)arg);
}

struct b1 *reactor_bench_libevent_b1_new(size_t n)
{
    struct b1 *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base = epoll_base();
    b->events = calloc(n ? n : 1, sizeof *b->events);
    if (!b->base || !b->events) {
        free(b->events);
        free(b);
        return NULL;
    }
    b->chain.n = n;
    return b;
}

void reactor_bench_libevent_b1_setup(struct b1 *b, const int *readers)
{
    for (size_t i = 0; i < b->chain.n; i++) {
        event_assign(&b->events[i], b->base, readers[i], EV_READ | EV_PERSIST, b1_cb,
                     (void *)(uintptr_t)i);
        event_add(&b->events[i], NULL);
    }
}

void reactor_bench_libevent_b1_teardown(struct b1 *b)
{
    for (size_t i = 0; i < b->chain.n; i++)
        event_del(&b->events[i]);
}

size_t reactor_bench_libevent_b1_run(struct b1 *b, const int *writers, size_t fired,
                                     size_t writes)
{
    current_b1 = b;
    chain_start(&b->chain, writers, fired, writes);
    while (b->chain.count < b->chain.fired)
        event_base_loop(b->base, EVLOOP_ONCE);
    return b->chain.count;
}

void reactor_bench_libevent_b1_free(struct b1 *b)
{
    event_base_free(b->base);
    free(b->events);
    free(b);
}

/* ---- B2 echo: event_new(EV_READ|EV_PERSIST) per connection -------------- */

struct conn {
    struct event *ev;
    struct pending out;
};

static char echo_buf[64 * 1024];

static void conn_close(struct conn *c)
{
    evutil_socket_t fd = event_get_fd(c->ev);
    event_free(c->ev);
    close(fd);
    free(c->out.buf);
    free(c);
}

/* Watches for `what` alone (read, or write while output is queued). */
static void conn_watch(struct conn *c, short what)
{
    struct event_base *base = event_get_base(c->ev);
    evutil_socket_t fd = event_get_fd(c->ev);
    event_callback_fn cb = event_get_callback(c->ev);
    event_del(c->ev);
    event_assign(c->ev, base, fd, what | EV_PERSIST, cb, c);
    event_add(c->ev, NULL);
}

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int r = what & EV_WRITE ? pending_flush(fd, &c->out)
                            : echo_once(fd, echo_buf, sizeof echo_buf, &c->out);
    if (r < 0)
        conn_close(c);
    else if (r > 0)
        conn_watch(c, what & EV_WRITE ? EV_READ : EV_WRITE);
}

static void accept_cb(evutil_socket_t listener, short what, void *arg)
{
    struct event_base *base = arg;
    (void)what;
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->ev = event_new(base, fd, EV_READ | EV_PERSIST, conn_cb, c);
        if (!c->ev) {
            close(fd);
            free(c);
            continue;
        }
        event_add(c->ev, NULL);
    }
}

int reactor_bench_libevent_echo(int listen_fd)
{
    struct event_base *base = epoll_base();
    struct event *acceptor;
    if (!base)
        return -1;
    acceptor = event_new(base, listen_fd, EV_READ | EV_PERSIST, accept_cb, base);
    if (!acceptor)
        return -1;
    event_add(acceptor, NULL);
    event_base_dispatch(base);
    return 0;
}

/* ---- B5 timers: evtimer_add / evtimer_del / expire ---------------------- */

struct b5 {
    struct event_base *base;
    struct event *timers;
    struct timeval *after;
    size_t n, fired;
};

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct b5 *t = arg;
    (void)fd;
    (void)what;
    t->fired++;
}

struct b5 *reactor_bench_libevent_b5_new(const double *after, size_t n)
{
    struct b5 *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->base = epoll_base();
    t->timers = calloc(n ? n : 1, sizeof *t->timers);
    t->after = calloc(n ? n : 1, sizeof *t->after);
    if (!t->base || !t->timers || !t->after) {
        free(t->timers);
        free(t->after);
        free(t);
        return NULL;
    }
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        t->after[i].tv_sec = (time_t)after[i];
        t->after[i].tv_usec = (suseconds_t)((after[i] - (double)(time_t)after[i]) * 1e6);
        evtimer_assign(&t->timers[i], t->base, timer_cb, t);
    }
    return t;
}

long long reactor_bench_libevent_b5_insert(struct b5 *t)
{
    long long start = now_ns();
    for (size_t i = 0; i < t->n; i++)
        evtimer_add(&t->timers[i], &t->after[i]);
    return now_ns() - start;
}

long long reactor_bench_libevent_b5_cancel(struct b5 *t)
{
    long long start = now_ns();
    for (size_t i = 0; i < t->n; i++)
        evtimer_del(&t->timers[i]);
    return now_ns() - start;
}

long long reactor_bench_libevent_b5_expire(struct b5 *t)
{
    struct timeval zero = {0, 0};
    for (size_t i = 0; i < t->n; i++)
        evtimer_add(&t->timers[i], &zero);
    t->fired = 0;
    long long start = now_ns();
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    long long took = now_ns() - start;
    return t->fired == t->n ? took : -1;
}

void reactor_bench_libevent_b5_free(struct b5 *t)
{
    for (size_t i = 0; i < t->n; i++)
        evtimer_del(&t->timers[i]);
    event_base_free(t->base);
    free(t->timers);
    free(t->after);
    free(t);
}

/* ---- B8 idle loop: test/bench_loop.c's EVLOOP_NONBLOCK turn ------------- */

struct b8 {
    struct event_base *base;
    struct event *io;
    struct event *timers;
    size_t ntimers;
};

static void never_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

struct b8 *reactor_bench_libevent_b8_new(int fd, size_t ntimers)
{
    struct b8 *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base = epoll_base();
    b->timers = calloc(ntimers ? ntimers : 1, sizeof *b->timers);
    if (!b->base || !b->timers) {
        free(b->timers);
        free(b);
        return NULL;
    }
    b->io = event_new(b->base, fd, EV_READ | EV_PERSIST, never_cb, NULL);
    event_add(b->io, NULL);
    b->ntimers = ntimers;
    for (size_t i = 0; i < ntimers; i++) {
        struct timeval tv = {3600 + (time_t)i, 0};
        evtimer_assign(&b->timers[i], b->base, never_cb, NULL);
        evtimer_add(&b->timers[i], &tv);
    }
    event_base_loop(b->base, EVLOOP_NONBLOCK);
    return b;
}

void reactor_bench_libevent_b8_iter(struct b8 *b, size_t iters)
{
    for (size_t i = 0; i < iters; i++)
        event_base_loop(b->base, EVLOOP_NONBLOCK);
}

void reactor_bench_libevent_b8_free(struct b8 *b)
{
    event_free(b->io);
    for (size_t i = 0; i < b->ntimers; i++)
        evtimer_del(&b->timers[i]);
    event_base_free(b->base);
    free(b->timers);
    free(b);
}

size_t reactor_bench_libevent_event_size(void)
{
    return event_get_struct_event_size();
}
