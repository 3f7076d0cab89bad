/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Work that may wait, such as a store request during an etcd leader election, on one thread
 * of the loop: the loop goes on serving meanwhile. Jobs run one at a time in the order given;
 * the thread hands them back through an eventfd, and their done calls run on the loop. */
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net_internal.h"

struct job {
    net_work_fn work;
    net_done_fn done;
    void *data;
    int64_t start_by; /* 0 = any time */
    int status;       /* 0 run, -ETIMEDOUT its turn came too late */
    struct job *next;
};

struct net_offload {
    int efd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t more;
    struct job *todo, **todo_tail; /* given, not yet run */
    struct job *ran, **ran_tail;   /* run, not yet handed back */
    size_t n;                      /* given and not yet handed back (the bound) */
    bool stop;
};

static void push(struct job ***tail, struct job *j)
{
    j->next = NULL;
    **tail = j;
    *tail = &j->next;
}

static void *worker(void *arg)
{
    struct net_offload *o = arg;
    const uint64_t one = 1;

    pthread_mutex_lock(&o->lock);
    for (;;) {
        while (!o->todo && !o->stop)
            pthread_cond_wait(&o->more, &o->lock);
        if (o->stop)
            break;
        struct job *j = o->todo;
        o->todo = j->next;
        if (!o->todo)
            o->todo_tail = &o->todo;
        pthread_mutex_unlock(&o->lock);
        if (j->start_by && now_ms() > j->start_by)
            j->status = -ETIMEDOUT;
        else
            j->work(j->data);
        pthread_mutex_lock(&o->lock);
        push(&o->ran_tail, j);
        /* the counter cannot overflow: at most NET_OFFLOAD_MAX increments between reads */
        if (write(o->efd, &one, sizeof(one)) < 0)
            log_error("offload: cannot wake the event loop: %m");
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Hands jobs back to the loop: their done calls, in order (status: each job's own, or
 * cancelled for the never run). */
static void hand_back(struct net_offload *o, struct job *list, bool cancelled)
{
    while (list) {
        struct job *j = list;
        list = j->next;
        o->n--;
        j->done(j->data, cancelled ? -ECANCELED : j->status);
        free(j);
    }
}

static struct job *take(struct job **head, struct job ***tail)
{
    struct job *list = *head;
    *head = NULL;
    *tail = head;
    return list;
}

static void on_ran(int fd, uint32_t events, void *data)
{
    struct net_offload *o = data;
    struct job *list;
    uint64_t count;
    (void)events;

    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("offload: cannot read its eventfd: %m");
    pthread_mutex_lock(&o->lock);
    list = take(&o->ran, &o->ran_tail);
    pthread_mutex_unlock(&o->lock);
    hand_back(o, list, false);
}

static int offload_start(struct net_loop *loop, struct net_offload **out)
{
    struct net_offload *o = xcalloc(1, sizeof(*o));
    sigset_t all, old;
    int r;

    o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (o->efd < 0) {
        r = log_error_errno(-errno, "offload: eventfd failed: %m");
        free(o);
        return r;
    }
    o->todo_tail = &o->todo;
    o->ran_tail = &o->ran;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->more, NULL);
    r = net_loop_watch(loop, o->efd, EPOLLIN, on_ran, o);
    if (r == 0) {
        /* Signals are the loop's (its signalfd): the thread blocks them all. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&o->thread, NULL, worker, o);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
            log_error_errno(r, "offload: cannot start its thread: %m");
            net_loop_unwatch(loop, o->efd);
        }
    }
    if (r < 0) {
        close(o->efd);
        pthread_cond_destroy(&o->more);
        pthread_mutex_destroy(&o->lock);
        free(o);
        return r;
    }
    *out = o;
    return 0;
}

int net_loop_offload(struct net_loop *loop, net_work_fn work, net_done_fn done, void *data, int64_t start_by)
{
    struct net_offload **op = net_loop_offload_slot(loop);
    struct job *j;
    int r;

    if (!*op && (r = offload_start(loop, op)) < 0)
        return r;
    if ((*op)->n >= NET_OFFLOAD_MAX)
        return -EBUSY;
    j = xcalloc(1, sizeof(*j));
    *j = (struct job){.work = work, .done = done, .data = data, .start_by = start_by};
    pthread_mutex_lock(&(*op)->lock);
    push(&(*op)->todo_tail, j);
    (*op)->n++;
    pthread_cond_signal(&(*op)->more);
    pthread_mutex_unlock(&(*op)->lock);
    return 0;
}

void net_offload_free(struct net_offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_cond_signal(&o->more);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL); /* the job running ends within its own deadline */
    hand_back(o, take(&o->ran, &o->ran_tail), false);
    hand_back(o, take(&o->todo, &o->todo_tail), true);
    close(o->efd);
    pthread_cond_destroy(&o->more);
    pthread_mutex_destroy(&o->lock);
    free(o);
}
