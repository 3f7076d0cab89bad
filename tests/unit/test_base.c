/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "tap.h"

static void test_hex(void)
{
    const uint8_t in[] = {0x00, 0x7f, 0x80, 0xff, 0xab};
    uint8_t back[8];
    char hex[11];

    hex_encode(in, sizeof(in), hex);
    CHECK(!strcmp(hex, "007f80ffab"), "hex_encode writes lowercase hex");
    CHECK(hex_decode("007F80FFab", 10, back, sizeof(back)) == 5 && !memcmp(back, in, 5),
          "hex_decode accepts both cases");
    CHECK(hex_decode("abc", 3, back, sizeof(back)) == -EINVAL, "hex_decode refuses an odd length");
    CHECK(hex_decode("zz", 2, back, sizeof(back)) == -EINVAL, "hex_decode refuses non-hex");
    CHECK(hex_decode("00112233445566778899", 20, back, sizeof(back)) == -EINVAL,
          "hex_decode refuses output larger than the buffer");
}

static void test_parse_u32(void)
{
    uint32_t v = 0;
    CHECK(parse_u32("0x1500000", UINT32_MAX, &v) == 0 && v == 0x1500000, "parse_u32 reads hex");
    CHECK(parse_u32("0X81000008", UINT32_MAX, &v) == 0 && v == 0x81000008u, "parse_u32 reads 0X hex");
    CHECK(parse_u32("42", UINT32_MAX, &v) == 0 && v == 42, "parse_u32 reads decimal");
    CHECK(parse_u32("0xffffffff", UINT32_MAX, &v) == 0 && v == UINT32_MAX, "parse_u32 reads the maximum");
    CHECK(parse_u32("0x100000000", UINT32_MAX, &v) == -ERANGE, "parse_u32 refuses overflow");
    CHECK(parse_u32("70000", 65535, &v) == -ERANGE, "parse_u32 honours the caller's maximum");
    CHECK(parse_u32("", UINT32_MAX, &v) == -EINVAL, "parse_u32 refuses empty");
    CHECK(parse_u32("0x", UINT32_MAX, &v) == -EINVAL, "parse_u32 refuses a bare 0x");
    CHECK(parse_u32("12a", UINT32_MAX, &v) == -EINVAL, "parse_u32 refuses trailing junk");
    CHECK(parse_u32("-1", UINT32_MAX, &v) == -EINVAL, "parse_u32 refuses negatives");
}

static void test_parse_seconds(void)
{
    int64_t ms = 0;
    CHECK(parse_seconds_ms("2", &ms) == 0 && ms == 2000, "parse_seconds_ms reads whole seconds");
    CHECK(parse_seconds_ms("0.25", &ms) == 0 && ms == 250, "parse_seconds_ms reads fractions");
    CHECK(parse_seconds_ms("1.5", &ms) == 0 && ms == 1500, "parse_seconds_ms reads 1.5");
    CHECK(parse_seconds_ms("0", &ms) == -EINVAL, "parse_seconds_ms refuses zero");
    CHECK(parse_seconds_ms("abc", &ms) == -EINVAL, "parse_seconds_ms refuses words");
    CHECK(parse_seconds_ms("", &ms) == -EINVAL, "parse_seconds_ms refuses empty");
    CHECK(parse_seconds_ms("99999999999", &ms) == -ERANGE, "parse_seconds_ms refuses huge values");
}

static void test_secrets(void)
{
    struct secret *s = secret_new(16);
    CHECK(s && s->cap == 16 && s->len == 0 && s->data[16] == 0, "secret_new gives an empty, terminated buffer");
    memcpy(s->data, "passphrase", 10);
    s->len = 10;
    secret_free(s);
    secret_free(NULL);
    CHECK(secure_equal("abc", "abc", 3) && !secure_equal("abc", "abd", 3), "secure_equal compares bytes");
    {
        uint8_t buf[8] = "secret!";
        secure_wipe(buf, sizeof(buf));
        CHECK(buf[0] == 0 && buf[6] == 0, "secure_wipe zeroes");
    }
}

static void test_read_file(void)
{
    char *data = NULL;
    size_t len = 0;
    CHECK(file_read_all(tap_data("rsa-spki-vectors.txt"), 1 << 20, &data, &len) == 0 && len > 0 && data[len] == '\0',
          "file_read_all reads a file and terminates it");
    free(data);
    CHECK(file_read_all(tap_data("rsa-spki-vectors.txt"), 100, &data, &len) == -EFBIG,
          "file_read_all refuses a file over the limit");
    CHECK(file_read_all("/nonexistent/x", 100, &data, &len) == -ENOENT, "file_read_all reports a missing file");
}

static void test_base64(void)
{
    /* Vectors of RFC 4648 §10 and their URL/raw forms. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const raw[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]), len;
        char *e = base64_encode((const uint8_t *)plain[i], n, BASE64_STD, &len);
        char *u = base64_encode((const uint8_t *)plain[i], n, BASE64_URL_RAW, NULL);
        uint8_t *d = NULL;
        CHECK(!strcmp(e, std[i]) && len == strlen(std[i]), "base64 std of \"%s\"", plain[i]);
        CHECK(!strcmp(u, raw[i]), "base64 raw url of \"%s\"", plain[i]);
        CHECK(base64_decode(std[i], strlen(std[i]), BASE64_STD, &d, &len) == 0 && len == n && !memcmp(d, plain[i], n),
              "base64 std decode of %s", std[i]);
        free(d);
        d = NULL;
        CHECK(base64_decode(raw[i], strlen(raw[i]), BASE64_URL_RAW, &d, &len) == 0 && len == n &&
                  !memcmp(d, plain[i], n),
              "base64 raw url decode of %s", raw[i]);
        free(d);
        free(e);
        free(u);
    }
    {
        const uint8_t bin[] = {0xfb, 0xff, 0xfe};
        char *s = base64_encode(bin, 3, BASE64_STD, NULL), *u = base64_encode(bin, 3, BASE64_URL_RAW, NULL);
        CHECK(!strcmp(s, "+//+") && !strcmp(u, "-__-"), "the two alphabets differ in + / and - _");
        free(s);
        free(u);
    }
    uint8_t *d = NULL;
    size_t len;
    CHECK(base64_decode("Zg=", 3, BASE64_STD, &d, &len) == -EINVAL, "std decode refuses a bad length");
    CHECK(base64_decode("Zh==", 4, BASE64_STD, &d, &len) == -EINVAL, "std decode refuses non-zero trailing bits");
    CHECK(base64_decode("Z-==", 4, BASE64_STD, &d, &len) == -EINVAL, "std decode refuses the URL alphabet");
    CHECK(base64_decode("Zm9v\n", 5, BASE64_STD, &d, &len) == -EINVAL, "std decode refuses whitespace");
    CHECK(base64_decode("Z", 1, BASE64_URL_RAW, &d, &len) == -EINVAL, "raw decode refuses a lone character");
    CHECK(base64_decode("Zg==", 4, BASE64_URL_RAW, &d, &len) == -EINVAL, "raw decode refuses padding");
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

/* file_write_atomic never writes through a symlink and leaves no temporary file. */
static void test_write_atomic(void)
{
    const char *base = getenv("KKMS_TEST_TMP");
    char dir[512], path[600], victim[600], *text = NULL;
    struct stat st;
    size_t len;

    snprintf(dir, sizeof(dir), "%s/test_base.XXXXXX", base && *base ? base : "/tmp");
    mkdir(base && *base ? base : "/tmp", 0755);
    if (!mkdtemp(dir)) {
        CHECK(0, "create a temporary directory");
        return;
    }
    snprintf(path, sizeof(path), "%s/port", dir);
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    FILE *f = fopen(victim, "w");
    fputs("precious", f);
    fclose(f);
    (void)!symlink(victim, path);
    CHECK(file_write_atomic("--port-file", path, "1234\n", 5, 0644) == 0 && lstat(path, &st) == 0 &&
              S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 && file_read_all(path, 100, &text, &len) == 0 &&
              !strcmp(text, "1234\n"),
          "file_write_atomic replaces a symlink at the path with a regular file of the given mode");
    free(text);
    CHECK(file_read_all(victim, 100, &text, &len) == 0 && !strcmp(text, "precious"),
          "...and the symlink's target is untouched");
    free(text);
    CHECK(count_entries(dir) == 2, "...and no temporary file is left behind");
    CHECK(file_write_atomic(NULL, path, "5678\n", 5, 0600) == 0 && file_read_all(path, 100, &text, &len) == 0 &&
              !strcmp(text, "5678\n") && stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
          "file_write_atomic replaces an existing file");
    free(text);
    unlink(path);
    unlink(victim);
    rmdir(dir);
}

/* Quiet mode: errors of the thread go to debug level, their text is kept, the setting nests. */
static void test_log_quiet(void)
{
    tap_capture_begin();
    bool was = log_set_quiet(true);
    log_error("first failure");
    log_warn("second failure");
    bool inner = log_set_quiet(true);
    char kept[64];
    snprintf(kept, sizeof(kept), "%s", log_quiet_last());
    log_set_quiet(inner);
    log_set_quiet(was);
    log_error("reported once");
    const char *out = tap_capture_end();
    CHECK(!was && inner, "quiet mode: off by default, nests");
    CHECK(!strcmp(kept, "second failure"), "the last demoted message is kept");
    CHECK(!strstr(out, "first failure") && !strstr(out, "second failure") && strstr(out, "reported once"),
          "demoted messages are not printed at the default level; errors after it are");
}

static void test_errno_idiom_and_safe_growth(void)
{
    tap_capture_begin();
    errno = 0;
    int r = log_error_errno(-ENOENT, "disk.img: cannot open: %m");
    const char *out = tap_capture_end();
    CHECK(r == -ENOENT && strstr(out, "disk.img: cannot open: No such file or directory"),
          "log_error_errno sets errno, so %m names its error (not the last system call's)");
    CHECK(log_error_errno(EPERM, "x") == -EPERM && errno == EPERM, "a positive code is returned negative");

    struct secret *s = secret_new_copy("hunter2", 7);
    CHECK(s->len == 7 && !memcmp(s->data, "hunter2", 7) && s->data[7] == 0 && s->cap >= 7,
          "secret_new_copy: the bytes, NUL-terminated");
    secret_free(s);
    char *old = xmalloc(8);
    memcpy(old, "secret!", 8);
    char *grown = secure_realloc(old, 8, 8, 64);
    CHECK(grown && !memcmp(grown, "secret!", 8), "secure_realloc keeps the used bytes");
    free(grown);
    char *fresh = secure_realloc(NULL, 0, 0, 4);
    CHECK(fresh != NULL, "secure_realloc of NULL allocates");
    free(fresh);

    char *p = xstrdup("owned");
    char *taken = TAKE_PTR(p);
    CHECK(!p && taken && !strcmp(taken, "owned"), "TAKE_PTR hands the pointer over and leaves NULL");
    free(taken);
    char *f = xasprintf("%s-%d", "node", 7);
    CHECK(!strcmp(f, "node-7"), "xasprintf formats");
    free(f);
    char *n = xstrndup("abcdef", 3);
    CHECK(!strcmp(n, "abc"), "xstrndup cuts");
    free(n);
}

/* ---- fd_wait, read_full, write_full ---- */

static void on_alarm(int sig) { (void)sig; }

/* A child that sleeps ms, then writes n bytes of pattern to fd in pieces of at most piece. */
static pid_t slow_writer(int fd, int ms, size_t n, size_t piece)
{
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t buf[4096];
        usleep((useconds_t)ms * 1000);
        for (size_t off = 0; off < n;) {
            size_t k = n - off < piece ? n - off : piece;
            for (size_t i = 0; i < k; i++)
                buf[i] = (uint8_t)((off + i) * 7);
            if (write(fd, buf, k) != (ssize_t)k)
                _exit(1);
            off += k;
            usleep(2000);
        }
        _exit(0);
    }
    return pid;
}

static bool pattern_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 7))
            return false;
    return true;
}

static void test_fd_deadlines(void)
{
    int sv[2], status = 0;
    uint8_t *big = xmalloc(1 << 20), small[64];
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    struct itimerval tick = {.it_interval = {0, 20000}, .it_value = {0, 20000}}, off = {0};
    pid_t pid;
    int64_t t0;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    t0 = now_ms();
    CHECK(fd_wait(sv[0], POLLIN, now_ms() + 100) == -ETIMEDOUT && now_ms() - t0 >= 90,
          "fd_wait: nothing to read before the deadline is -ETIMEDOUT, after the deadline");
    CHECK(fd_wait(sv[0], POLLOUT, now_ms() + 100) == 0, "fd_wait: a socket with room is ready for writing");
    CHECK(read_full(sv[0], small, sizeof(small), now_ms() - 1) == -ETIMEDOUT,
          "read_full: a deadline already past is -ETIMEDOUT without waiting");

    /* partial reads: 100 KiB arriving in 1000-byte pieces, read as one */
    pid = slow_writer(sv[1], 0, 100000, 1000);
    CHECK(read_full(sv[0], big, 100000, now_ms() + 10000) == 0 && pattern_ok(big, 100000),
          "read_full: 100,000 bytes that come in 1,000-byte pieces are read whole");
    waitpid(pid, &status, 0);

    /* a short write to a full socket buffer: write_full waits for room and writes the rest */
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    for (size_t i = 0; i < (1 << 20); i++)
        big[i] = (uint8_t)(i * 7);
    pid = fork();
    if (pid == 0) {
        uint8_t *in = malloc(1 << 20);
        usleep(100000); /* let the writer fill the buffer first */
        _exit(in && read_full(sv[1], in, 1 << 20, now_ms() + 20000) == 0 && pattern_ok(in, 1 << 20) ? 0 : 1);
    }
    CHECK(write_full(sv[0], big, 1 << 20, now_ms() + 20000) == 0,
          "write_full: 1 MiB through a non-blocking socket (partial writes, EAGAIN) is written whole");
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "write_full: the reader got every byte in order");

    /* nobody reads: write_full gives up at the deadline */
    t0 = now_ms();
    CHECK(write_full(sv[0], big, 1 << 20, now_ms() + 200) == -ETIMEDOUT && now_ms() - t0 < 5000,
          "write_full: a peer that reads nothing is -ETIMEDOUT at the deadline");
    close(sv[0]);
    close(sv[1]);

    /* EINTR: a signal every 20 ms (no SA_RESTART) while waiting for data that comes after 200 ms */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    sigaction(SIGALRM, &sa, &old);
    pid = slow_writer(sv[1], 200, 64, 16);
    setitimer(ITIMER_REAL, &tick, NULL);
    CHECK(read_full(sv[0], small, 64, now_ms() + 10000) == 0 && pattern_ok(small, 64),
          "read_full: interrupted by signals (EINTR) it keeps waiting and reads everything");
    t0 = now_ms();
    CHECK(fd_wait(sv[0], POLLIN, now_ms() + 150) == -ETIMEDOUT && now_ms() - t0 >= 140,
          "fd_wait: signals (EINTR) do not cut the wait short of its deadline");
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    waitpid(pid, &status, 0);

    /* the stream ends early; the deadline passes after some bytes */
    CHECK(write(sv[1], "abc", 3) == 3, "three bytes written");
    CHECK(read_full(sv[0], small, 10, now_ms() + 150) == -ETIMEDOUT,
          "read_full: 3 of 10 bytes and then nothing is -ETIMEDOUT at the deadline");
    close(sv[1]);
    CHECK(read_full(sv[0], small, 10, now_ms() + 5000) == -ECONNRESET,
          "read_full: the peer closing before n bytes is -ECONNRESET");
    close(sv[0]);
    CHECK(fd_wait(sv[0], POLLIN, now_ms() + 1000) == -EBADF, "fd_wait: a closed descriptor is -EBADF");
    free(big);
}

static void test_secret_take(void)
{
    char *buf = xmalloc(8);
    struct secret *s;

    memcpy(buf, "pass\nxyz", 8);
    s = secret_take(buf, 4);
    CHECK(s->data == (uint8_t *)buf && s->len == 4 && s->cap == 4 && !strcmp((char *)s->data, "pass"),
          "secret_take adopts the buffer itself (no copy), NUL-terminated after len");
    secret_free(s);
    s = base64_encode_secret("\x01\x02\x03\x04", 4, BASE64_STD);
    CHECK(s->len == 8 && !memcmp(s->data, "AQIDBA==", 9), "base64_encode_secret: the text as a secret, NUL after it");
    secret_free(s);
}

int main(void)
{
    test_errno_idiom_and_safe_growth();
    test_log_quiet();
    test_base64();
    test_hex();
    test_parse_u32();
    test_parse_seconds();
    test_secrets();
    test_read_file();
    test_write_atomic();
    test_fd_deadlines();
    test_secret_take();
    return tap_done();
}
