/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The event loop: level-triggered epoll, a min-heap of timers, signals through signalfd, and
 * deferred calls run after each batch (so a connection is never freed under its own feet). */
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "net_internal.h"

#define MAX_EVENTS 64

struct net_timer {
    struct net_loop *loop;
    int64_t at;
    size_t idx; /* position in the heap */
    net_timer_fn fn;
    void *data;
};

struct watch {
    int fd;       /* -1 once unwatched (freed after the batch) */
    uint32_t gen; /* with fd, the epoll data: an event is delivered only to the watch it was for */
    net_fd_fn fn;
    void *data;
    int sigfd_signo; /* > 0 for signal watches: the loop owns the fd */
    struct watch *next;
};

struct deferred {
    void (*fn)(void *data);
    void *data;
    struct deferred *next;
};

struct net_loop {
    int epfd;
    bool quit;
    int64_t now;
    struct net_timer **heap;
    size_t n_timers, cap_timers;
    struct watch *watches;
    struct watch **by_fd; /* live watches indexed by fd */
    size_t n_by_fd;
    uint32_t next_gen;
    struct deferred *defer_head, **defer_tail;
    struct net_offload *offload;
};

int net_loop_new(struct net_loop **out)
{
    struct net_loop *loop = xcalloc(1, sizeof(*loop));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int r = -errno;
        free(loop);
        return log_error_errno(r, "epoll_create1 failed: %m");
    }
    loop->defer_tail = &loop->defer_head;
    loop->now = now_ms();
    *out = loop;
    return 0;
}

static void free_dead_watches(struct net_loop *loop)
{
    for (struct watch **p = &loop->watches; *p;) {
        struct watch *w = *p;
        if (w->fd < 0) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

void net_loop_free(struct net_loop *loop)
{
    if (!loop)
        return;
    net_offload_free(loop->offload);
    for (size_t i = 0; i < loop->n_timers; i++)
        free(loop->heap[i]);
    free(loop->heap);
    for (struct watch *w = loop->watches; w; w = w->next)
        if (w->sigfd_signo > 0 && w->fd >= 0)
            close(w->fd);
    for (struct watch *w = loop->watches, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (struct deferred *d = loop->defer_head, *n; d; d = n) {
        n = d->next;
        free(d);
    }
    free(loop->by_fd);
    close(loop->epfd);
    free(loop);
}

int64_t net_loop_now(struct net_loop *loop) { return loop->now; }

struct net_offload **net_loop_offload_slot(struct net_loop *loop) { return &loop->offload; }

void net_loop_quit(struct net_loop *loop) { loop->quit = true; }

/* ---- timers: a binary min-heap on the deadline ---- */

static void heap_swap(struct net_loop *loop, size_t a, size_t b)
{
    struct net_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->idx = a;
    loop->heap[b]->idx = b;
}

static void heap_up(struct net_loop *loop, size_t i)
{
    while (i > 0 && loop->heap[(i - 1) / 2]->at > loop->heap[i]->at) {
        heap_swap(loop, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct net_loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->n_timers && loop->heap[l]->at < loop->heap[m]->at)
            m = l;
        if (r < loop->n_timers && loop->heap[r]->at < loop->heap[m]->at)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

static void heap_remove(struct net_loop *loop, size_t i)
{
    size_t last = --loop->n_timers;
    if (i != last) {
        heap_swap(loop, i, last);
        heap_down(loop, i);
        heap_up(loop, i);
    }
}

struct net_timer *net_timer_add(struct net_loop *loop, int64_t at_ms, net_timer_fn fn, void *data)
{
    struct net_timer *t = xcalloc(1, sizeof(*t));
    t->loop = loop;
    t->at = at_ms;
    t->fn = fn;
    t->data = data;
    if (loop->n_timers == loop->cap_timers) {
        size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 16;
        loop->heap = xrealloc(loop->heap, cap * sizeof(*loop->heap));
        loop->cap_timers = cap;
    }
    t->idx = loop->n_timers++;
    loop->heap[t->idx] = t;
    heap_up(loop, t->idx);
    return t;
}

void net_timer_cancel(struct net_timer *t)
{
    if (!t)
        return;
    heap_remove(t->loop, t->idx);
    free(t);
}

static void run_timers(struct net_loop *loop)
{
    /* Bounded: only timers due now; one added by a callback for "now" waits for the next turn. */
    size_t budget = loop->n_timers;
    while (budget-- > 0 && loop->n_timers > 0 && loop->heap[0]->at <= loop->now) {
        struct net_timer *t = loop->heap[0];
        heap_remove(loop, 0);
        t->fn(t, t->data);
        free(t);
    }
}

/* ---- fd watches ---- */

static struct watch *find_watch(struct net_loop *loop, int fd)
{
    return fd >= 0 && (size_t)fd < loop->n_by_fd ? loop->by_fd[fd] : NULL;
}

/* The epoll data of a watch: its fd and generation, not a pointer. An fd closed without
 * EPOLL_CTL_DEL (net_loop_unwatch_closing) stays in the epoll set while another process still
 * holds its socket (a fork before an exec): its events then name a watch that is gone or a
 * newer one on the same fd number, and are dropped instead of reaching freed memory. */
static uint64_t watch_key(const struct watch *w) { return (uint64_t)w->gen << 32 | (uint32_t)w->fd; }

static int add_watch(struct net_loop *loop, struct watch *w, uint32_t events)
{
    w->gen = ++loop->next_gen;
    struct epoll_event ev = {.events = events, .data.u64 = watch_key(w)};
    if (w->fd < 0 || find_watch(loop, w->fd)) {
        int fd = w->fd;
        free(w);
        return log_error_errno(-EEXIST, "fd %d is already watched", fd);
    }
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
        int r = -errno;
        free(w);
        return log_error_errno(r, "epoll_ctl(ADD) failed: %m");
    }
    if ((size_t)w->fd >= loop->n_by_fd) {
        size_t n = loop->n_by_fd ? loop->n_by_fd : 64;
        while (n <= (size_t)w->fd)
            n *= 2;
        struct watch **p = xrealloc(loop->by_fd, n * sizeof(*p));
        memset(p + loop->n_by_fd, 0, (n - loop->n_by_fd) * sizeof(*p));
        loop->by_fd = p;
        loop->n_by_fd = n;
    }
    loop->by_fd[w->fd] = w;
    w->next = loop->watches;
    loop->watches = w;
    return 0;
}

int net_loop_watch(struct net_loop *loop, int fd, uint32_t events, net_fd_fn fn, void *data)
{
    struct watch *w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    w->fn = fn;
    w->data = data;
    return add_watch(loop, w, events);
}

int net_loop_watch_modify(struct net_loop *loop, int fd, uint32_t events)
{
    struct watch *w = find_watch(loop, fd);
    if (!w)
        return -ENOENT;
    struct epoll_event ev = {.events = events, .data.u64 = watch_key(w)};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return log_error_errno(-errno, "epoll_ctl(MOD) failed: %m");
    return 0;
}

static void unwatch(struct net_loop *loop, int fd, bool del)
{
    struct watch *w = find_watch(loop, fd);
    if (!w)
        return;
    if (del)
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->by_fd[fd] = NULL;
    w->fd = -1; /* freed after the batch: an event for it may still be pending */
}

void net_loop_unwatch(struct net_loop *loop, int fd) { unwatch(loop, fd, true); }

void net_loop_unwatch_closing(struct net_loop *loop, int fd) { unwatch(loop, fd, false); }

/* A signal watch: the loop owns its signalfd. */
struct sig_watch {
    struct watch w;
    struct net_loop *loop;
    net_signal_fn fn;
    void *data;
};

static void on_signal(int fd, uint32_t events, void *data)
{
    struct sig_watch *s = data;
    struct signalfd_siginfo si;
    (void)events;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        s->fn(s->loop, (int)si.ssi_signo, s->data);
}

int net_loop_on_signal(struct net_loop *loop, int signo, net_signal_fn fn, void *data)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return log_error_errno(-errno, "cannot block signal %d: %m", signo);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return log_error_errno(-errno, "signalfd failed: %m");
    struct sig_watch *s = xcalloc(1, sizeof(*s));
    s->w.fd = fd;
    s->w.fn = on_signal;
    s->w.data = s;
    s->w.sigfd_signo = signo;
    s->loop = loop;
    s->fn = fn;
    s->data = data;
    int r = add_watch(loop, &s->w, EPOLLIN);
    if (r < 0)
        close(fd);
    return r;
}

/* ---- deferred calls and the run loop ---- */

void net_loop_defer(struct net_loop *loop, void (*fn)(void *data), void *data)
{
    struct deferred *d = xcalloc(1, sizeof(*d));
    d->fn = fn;
    d->data = data;
    *loop->defer_tail = d;
    loop->defer_tail = &d->next;
}

void net_loop_defer_cancel(struct net_loop *loop, void (*fn)(void *data), void *data)
{
    for (struct deferred **p = &loop->defer_head; *p;) {
        struct deferred *d = *p;
        if (d->fn == fn && d->data == data) {
            *p = d->next;
            free(d);
        } else {
            p = &d->next;
        }
    }
    loop->defer_tail = &loop->defer_head;
    while (*loop->defer_tail)
        loop->defer_tail = &(*loop->defer_tail)->next;
}

static void run_deferred(struct net_loop *loop)
{
    /* Calls deferred by these calls run too: each is a finite piece of cleanup. */
    while (loop->defer_head) {
        struct deferred *d = loop->defer_head;
        loop->defer_head = d->next;
        if (!loop->defer_head)
            loop->defer_tail = &loop->defer_head;
        d->fn(d->data);
        free(d);
    }
}

int net_loop_run(struct net_loop *loop)
{
    struct epoll_event ev[MAX_EVENTS];

    loop->quit = false;
    while (!loop->quit) {
        int timeout = -1;
        loop->now = now_ms();
        if (loop->defer_head) {
            timeout = 0;
        } else if (loop->n_timers > 0) {
            int64_t d = loop->heap[0]->at - loop->now;
            timeout = d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
        }
        int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return log_error_errno(-errno, "epoll_wait failed: %m");
        }
        loop->now = now_ms();
        for (int i = 0; i < n; i++) {
            struct watch *w = find_watch(loop, (int)(uint32_t)ev[i].data.u64);
            if (w && w->gen == (uint32_t)(ev[i].data.u64 >> 32))
                w->fn(w->fd, ev[i].events, w->data);
        }
        run_timers(loop);
        run_deferred(loop);
        free_dead_watches(loop);
    }
    return 0;
}
