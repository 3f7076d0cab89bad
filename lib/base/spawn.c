/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Running one plugin process: fork/exec in its own process group, stdin/stdout/stderr over
 * non-blocking pipes driven by poll() so a chatty plugin cannot deadlock us, a hard deadline,
 * and the whole group killed and the child reaped on every path. Upstream has no time limit
 * (docs/upstream.md §4.2); a hung plugin there hangs the boot. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by definition */
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Closes every fd from lo up except keep (keep >= lo); async-signal-safe. */
static void close_from(int lo, int keep, long max_fd)
{
#ifdef SYS_close_range
    if ((keep <= lo || syscall(SYS_close_range, lo, keep - 1, 0) == 0) &&
        syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
        return;
#endif
    for (int fd = lo; fd < max_fd; fd++)
        if (fd != keep)
            close(fd);
}

/* In the child between fork and exec: only async-signal-safe calls. Reports a failure as an
 * errno on report_fd, which exec closes on success. */
static _Noreturn void child_exec(char *const argv[], int in_fd, int out_fd, int err_fd, int report_fd, long max_fd)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    int e;

    /* Own process group, so the whole plugin (and what it starts) can be killed at once. */
    if (setpgid(0, 0) < 0)
        goto fail;
    /* Ignored signals and the blocked mask survive exec: give the plugin a clean slate, so
     * SIGTERM and SIGPIPE act on it as usual. */
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Lift every fd above 2 first: if our caller had 0-2 closed, a pipe may sit there. */
    in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
    report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0 || report_fd < 0)
        goto fail;
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto fail;
    /* Everything else is O_CLOEXEC already; this also covers fds opened by libraries that
     * forgot to set it. */
    close_from(3, report_fd, max_fd);
    execv(argv[0], argv);
fail:
    e = errno;
    (void)!write(report_fd, &e, sizeof(e));
    _exit(127);
}

static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    /* WNOWAIT: leave the zombie, so its pid (= the group id) cannot be reused while we may
     * still signal the group. */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD; /* already reaped: our caller ignores SIGCHLD */
    return si.si_pid == pid;
}

static int clamp_ms(int64_t ms) { return ms > INT_MAX ? INT_MAX : ms < 0 ? 0 : (int)ms; }

/* Waits until the child exits or the monotonic clock reaches until; true when it exited. */
static bool wait_exit(pid_t pid, int pidfd, int64_t until)
{
    for (;;) {
        int64_t left;
        if (child_exited(pid))
            return true;
        left = until - now_ms();
        if (left <= 0)
            return false;
        if (pidfd >= 0) {
            (void)fd_wait(pidfd, POLLIN, until);
        } else {
            (void)poll(NULL, 0, clamp_ms(left < 20 ? left : 20));
        }
    }
}

static void set_nonblock(int fd) { (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Grows res->out by copying and wiping (it may hold the password). */
static void grow_out(struct spawn_result *res)
{
    struct secret *o = res->out;
    size_t cap = o->cap ? o->cap * 2 : 4096;
    uint8_t *nb;
    if (cap > SPAWN_MAX_STDOUT + 1)
        cap = SPAWN_MAX_STDOUT + 1;
    nb = secure_realloc(o->data, o->cap + 1, o->len, cap + 1);
    if (!nb)
        abort_oom();
    o->data = nb;
    o->cap = cap;
}

/* One read from the stdout pipe; false at EOF or on error. */
static bool read_stdout(int fd, struct spawn_result *res)
{
    ssize_t n;
    if (res->out->len == res->out->cap)
        grow_out(res);
    n = read(fd, res->out->data + res->out->len, res->out->cap - res->out->len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    res->out->len += (size_t)n;
    if (res->out->len > SPAWN_MAX_STDOUT)
        res->stdout_overflow = true;
    return true;
}

/* One read from the stderr pipe; keeps the first SPAWN_MAX_STDERR bytes, drops the rest. */
static bool read_stderr(int fd, struct spawn_result *res)
{
    char sink[4096];
    size_t room = SPAWN_MAX_STDERR - res->err_len;
    ssize_t n = room ? read(fd, res->err + res->err_len, room) : read(fd, sink, sizeof(sink));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    if (room)
        res->err_len += (size_t)n;
    return true;
}

/* Writes as much stdin as the pipe takes; false once stdin is finished (all written, or the
 * plugin closed its end: not an error, Go's exec ignores EPIPE on stdin too). */
static bool write_stdin(int fd, const char *in, size_t in_len, size_t *off)
{
    while (*off < in_len) {
        ssize_t n = write(fd, in + *off, in_len - *off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN;
        }
        *off += (size_t)n;
    }
    return false;
}

/* The I/O loop: until the child exited and both output pipes are at EOF, or a limit is hit. */
static int pump(pid_t pid, int pidfd, int *in_fd, int out_fd, int err_fd, const char *in, size_t in_len,
                int64_t deadline, struct spawn_result *res, bool *exited)
{
    bool out_open = true, err_open = true;
    size_t in_off = 0;
    int64_t drain_until = -1;

    if (in_len == 0)
        close_fd(in_fd);
    for (;;) {
        struct pollfd fds[4];
        int nfds = 0, i_in = -1, i_out = -1, i_err = -1, r;
        int64_t now, limit, wait_ms;

        if (!*exited)
            *exited = child_exited(pid);
        if (*exited && !out_open && !err_open)
            return 0;
        now = now_ms();
        if (now >= deadline) {
            res->timed_out = !*exited;
            return 0;
        }
        if (*exited) {
            if (drain_until < 0)
                drain_until = now + SPAWN_DRAIN_MS < deadline ? now + SPAWN_DRAIN_MS : deadline;
            if (now >= drain_until)
                return 0; /* it left something holding the pipes; that gets killed */
        }
        limit = *exited ? drain_until : deadline;
        wait_ms = limit - now;
        if (!*exited && pidfd < 0 && wait_ms > 20)
            wait_ms = 20; /* no pidfd: notice the exit by polling */

        if (*in_fd >= 0)
            i_in = nfds, fds[nfds++] = (struct pollfd){.fd = *in_fd, .events = POLLOUT};
        if (out_open)
            i_out = nfds, fds[nfds++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        if (err_open)
            i_err = nfds, fds[nfds++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        if (pidfd >= 0 && !*exited) /* wakes us when the child exits */
            fds[nfds++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        r = fd_wait_many(fds, (size_t)nfds, now + wait_ms);
        if (r == -ETIMEDOUT)
            continue;
        if (r < 0)
            return r;
        if (i_in >= 0 && fds[i_in].revents && !write_stdin(*in_fd, in, in_len, &in_off))
            close_fd(in_fd); /* EOF for the plugin */
        if (i_out >= 0 && fds[i_out].revents && !read_stdout(out_fd, res))
            out_open = false;
        if (res->stdout_overflow)
            return 0;
        if (i_err >= 0 && fds[i_err].revents && !read_stderr(err_fd, res))
            err_open = false;
    }
}

/* Ends the child for good and reaps it: SIGTERM to the group and a grace period if it is still
 * running, then SIGKILL to the group (also hitting whatever the plugin left behind). */
static int finish(pid_t pid, int pidfd, bool exited, int64_t grace_ms)
{
    int status = 0;
    if (!exited) {
        (void)kill(-pid, SIGTERM);
        (void)wait_exit(pid, pidfd, now_ms() + grace_ms);
    }
    (void)kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int spawn_run(char *const argv[], const void *in, size_t in_len, int64_t timeout_ms, int64_t grace_ms,
              struct spawn_result *res, char *why, size_t why_len)
{
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, rep_p[2] = {-1, -1};
    int pidfd = -1, exec_errno = 0, r = 0;
    long max_fd = sysconf(_SC_OPEN_MAX);
    sigset_t pipe_set, old_mask, pending;
    bool pipe_was_pending, exited = false;
    int64_t deadline;
    ssize_t n;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    res->err = xmalloc(SPAWN_MAX_STDERR + 1);
    res->out = secret_new(0);
    grow_out(res);
    if (max_fd < 0 || max_fd > 65536)
        max_fd = 65536;

    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
        pipe2(rep_p, O_CLOEXEC) < 0) {
        r = -errno;
        snprintf(why, why_len, "cannot create pipes: %s", strerror(-r));
        goto out;
    }

    /* Writing to a pipe whose reader is gone raises SIGPIPE, which would kill us; block it in
     * this thread and swallow one we cause, without touching the process-wide disposition. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    pipe_was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    deadline = now_ms() + timeout_ms;
    pid = fork();
    if (pid < 0) {
        r = -errno;
        snprintf(why, why_len, "cannot fork: %s", strerror(-r));
        goto restore;
    }
    if (pid == 0)
        child_exec(argv, in_p[0], out_p[1], err_p[1], rep_p[1], max_fd);

    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    close_fd(&rep_p[1]);
    /* Also from here, so the group exists whichever process runs first. */
    (void)setpgid(pid, pid);

    /* EOF means exec succeeded (the report pipe is close-on-exec). */
    while ((n = read(rep_p[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(exec_errno)) {
        while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
            ;
        r = -exec_errno;
        snprintf(why, why_len, "cannot execute: %s", strerror(exec_errno));
        goto restore;
    }

    pidfd = pidfd_open_(pid);
    set_nonblock(in_p[1]);
    set_nonblock(out_p[0]);
    set_nonblock(err_p[0]);
    r = pump(pid, pidfd, &in_p[1], out_p[0], err_p[0], in, in_len, deadline, res, &exited);
    if (r < 0)
        snprintf(why, why_len, "poll: %s", strerror(-r));
    /* Closing our ends first unblocks a plugin stuck writing to a full pipe. */
    close_fd(&in_p[1]);
    close_fd(&out_p[0]);
    close_fd(&err_p[0]);
    res->status = finish(pid, pidfd, exited, grace_ms);

restore:
    if (!pipe_was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
out:
    close_fd(&pidfd);
    close_fd(&in_p[0]);
    close_fd(&in_p[1]);
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    close_fd(&rep_p[0]);
    close_fd(&rep_p[1]);
    res->out->data[res->out->len] = '\0';
    res->err[res->err_len] = '\0';
    if (r < 0)
        spawn_result_clear(res);
    return r;
}

void spawn_result_clear(struct spawn_result *res)
{
    secret_free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
}
