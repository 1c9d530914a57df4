/* The B1 chain both C peers run (libevent's test/bench.c): each read event
 * reads its byte and, while writes remain, writes one to the next pair. */
#ifndef REACTOR_BENCH_CHAIN_H
#define REACTOR_BENCH_CHAIN_H

#include <stddef.h>
#include <unistd.h>

struct chain {
    const int *writers;
    size_t n, count, fired, writes;
};

/* bench.c's read_cb for pair `idx`, whose read end is `fd`. */
static void chain_read(struct chain *c, int fd, size_t idx)
{
    char ch;
    if (read(fd, &ch, 1) == 1)
        c->count++;
    if (c->writes > 0) {
        size_t next = idx + 1 == c->n ? 0 : idx + 1;
        if (write(c->writers[next], "e", 1) == 1) {
            c->writes--;
            c->fired++;
        }
    }
}

/* Takes over a chain the caller started: `fired` bytes written, `writes`
 * still to write. */
static void chain_start(struct chain *c, const int *writers, size_t fired, size_t writes)
{
    c->writers = writers;
    c->count = 0;
    c->fired = fired;
    c->writes = writes;
}

#endif
