/*
 * probe.c - the test probe that the integration tests run INSIDE containers.
 *
 * pyrun's integration tests need to ask "what does the world look like from
 * inside the container?": which namespaces am I in, what are my ids and
 * capabilities, what is mounted, which processes can I see, how do signals
 * reach me.  Busybox can answer some of that, but only as text meant for
 * people; this program answers with one JSON object that a test can load
 * with json.loads() and assert on.
 *
 * It is linked statically (gcc -static) and depends on nothing but libc, so
 * it runs in any root filesystem: the embedded busybox image, a Debian
 * minbase root, or an image pulled from a registry (the tests can copy it in).
 *
 * Subcommands (see usage() below):
 *   probe [info]        one JSON object describing the process and its view
 *   probe write PATH    try to create/write PATH, report ok/errno as JSON
 *   probe read PATH     read up to 64 KiB of PATH, report it as JSON
 *   probe signals       print "ready", then "signal N" per signal received
 *   probe zombie N      leave N orphans for PID 1 to reap
 *   probe forks N       try to fork N sleeping children, report how many
 *                       the kernel refused (pids limit), survive either way
 *   probe exit N        exit with status N
 *   probe winsize       terminal size of stdin and whether 0/1 are ttys
 *
 * Exit status: 0 on success (also when write/read fail: the failure is the
 * data), 2 for a usage error, N for "exit N".
 *
 * Build: gcc -std=c11 -static -Os -Wall -Wextra -Werror -o probe probe.c
 */

/* getgroups, prctl, environ, nanosleep... are POSIX/Linux, not ISO C11. */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* A tiny JSON writer.                                                      */
/*                                                                          */
/* Every value goes through put_key(), which writes the separating comma   */
/* when the current object/array already has a member, and the key when    */
/* we are inside an object.  `first[depth]` remembers "no member yet" for  */
/* each open container, so callers never juggle commas themselves.         */
/* ------------------------------------------------------------------------ */

#define JSON_MAX_DEPTH 16

static bool first[JSON_MAX_DEPTH];
static int depth;

/*
 * Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if the
 * bytes there are not valid UTF-8.  Needed because file contents and
 * environment strings are arbitrary bytes, but a JSON document must be
 * valid UTF-8 or json.loads() rejects the whole output.
 */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        if (p[0] == 0xE0)
            lo = 0xA0;          /* no overlong encodings */
        if (p[0] == 0xED)
            hi = 0x9F;          /* no UTF-16 surrogates */
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        if (p[0] == 0xF0)
            lo = 0x90;          /* no overlong encodings */
        if (p[0] == 0xF4)
            hi = 0x8F;          /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Write n bytes of s as a quoted JSON string.  Quote, backslash and control
 * characters are escaped; valid UTF-8 passes through; a byte that is not
 * valid UTF-8 becomes U+FFFD (the replacement character), so that the
 * document stays loadable whatever the input was.
 */
static void json_strn(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else if (c < 0x80) {
            putchar(c);
        } else {
            size_t len = utf8_len(p + i, n - i);

            if (len == 0) {
                fputs("\\ufffd", stdout);
                i++;
            } else {
                fwrite(p + i, 1, len, stdout);
                i += len;
            }
            continue;
        }
        i++;
    }
    putchar('"');
}

static void json_str(const char *s)
{
    json_strn(s, strlen(s));
}

/* Separator, then the key if we are in an object (key == NULL in arrays). */
static void put_key(const char *key)
{
    if (!first[depth])
        putchar(',');
    first[depth] = false;
    if (key) {
        json_str(key);
        putchar(':');
    }
}

static void open_container(const char *key, char bracket)
{
    put_key(key);
    putchar(bracket);
    depth++;
    first[depth] = true;
}

static void close_container(char bracket)
{
    putchar(bracket);
    depth--;
}

static void obj_begin(const char *key) { open_container(key, '{'); }
static void obj_end(void) { close_container('}'); }
static void arr_begin(const char *key) { open_container(key, '['); }
static void arr_end(void) { close_container(']'); }

static void put_str(const char *key, const char *value)
{
    put_key(key);
    json_str(value);
}

static void put_strn(const char *key, const char *value, size_t n)
{
    put_key(key);
    json_strn(value, n);
}

static void put_int(const char *key, long long value)
{
    put_key(key);
    printf("%lld", value);
}

static void put_bool(const char *key, bool value)
{
    put_key(key);
    fputs(value ? "true" : "false", stdout);
}

static void put_null(const char *key)
{
    put_key(key);
    fputs("null", stdout);
}

/* The top-level object: the document is one line, then a newline. */
static void doc_begin(void)
{
    depth = 0;
    first[0] = true;
    putchar('{');
    depth = 1;
    first[1] = true;
}

static void doc_end(void)
{
    fputs("}\n", stdout);
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Read up to `max` bytes of a file into a NUL-terminated malloc'd buffer.
 * Files in /proc report size 0 in stat(), so we read in a loop until EOF
 * instead of trusting st_size.  Returns NULL with errno set on failure.
 */
static char *slurp(const char *path, size_t max, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0, cap = 4096;
    char *buf;

    if (fd < 0)
        return NULL;
    buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    while (len < max) {
        size_t want = cap - len;
        ssize_t n;

        if (want > max - len)
            want = max - len;
        n = read(fd, buf + len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;

            free(buf);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap && len < max) {
            char *bigger = realloc(buf, cap * 2 + 1);

            if (!bigger) {
                free(buf);
                close(fd);
                errno = ENOMEM;
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    close(fd);
    buf[len] = '\0';
    if (lenp)
        *lenp = len;
    return buf;
}

/* Raw contents of a small /proc file as a JSON string, "" if unreadable. */
static void put_file(const char *key, const char *path)
{
    size_t len = 0;
    char *data = slurp(path, 1 << 20, &len);

    put_strn(key, data ? data : "", data ? len : 0);
    free(data);
}

/*
 * /proc/self/mountinfo escapes space, tab, newline and backslash in paths as
 * \040, \011, \012, \134 (see proc(5), show_mountinfo() in fs/proc_namespace.c).
 * Undo that in place so "target" is the real path a test would compare to.
 */
static void unescape_octal(char *s)
{
    char *out = s;

    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
            s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *out++ = *s++;
        }
    }
    *out = '\0';
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Parse a decimal argument; exit 2 (usage) if it is not a number. */
static long parse_number(const char *s)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "probe: not a number: %s\n", s);
        exit(2);
    }
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* probe info                                                               */
/* ------------------------------------------------------------------------ */

static void put_groups(void)
{
    int n = getgroups(0, NULL);
    gid_t *groups = NULL;

    arr_begin("groups");
    if (n > 0) {
        groups = calloc((size_t)n, sizeof(*groups));
        if (groups)
            n = getgroups(n, groups);
        for (int i = 0; groups && i < n; i++)
            put_int(NULL, groups[i]);
        free(groups);
    }
    arr_end();
}

/*
 * Capability sets exactly as the kernel prints them in /proc/self/status
 * (16 hex digits).  Tests compare them with the engine's expected bitmasks;
 * keeping the string avoids any doubt about signedness of bit 63.
 */
static void put_caps(void)
{
    static const char *const names[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
    char *status = slurp("/proc/self/status", 1 << 20, NULL);

    obj_begin("caps");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t klen = strlen(names[i]);
        const char *line = status;

        /* Find "CapXxx:" at the start of a line. */
        while (line && !(strncmp(line, names[i], klen) == 0 && line[klen] == ':')) {
            line = strchr(line, '\n');
            if (line)
                line++;
        }
        if (!line) {
            put_null(names[i]);
            continue;
        }
        line += klen + 1;
        line += strspn(line, " \t");
        put_strn(names[i], line, strcspn(line, "\n"));
    }
    obj_end();
    free(status);
}

/*
 * Namespace identity is the inode number of /proc/self/ns/<kind>: two
 * processes are in the same namespace iff these inodes (and the nsfs device)
 * are equal (namespaces(7)).  A kind the kernel lacks (e.g. "time" before
 * 5.6) is reported as null rather than failing the whole probe.
 */
static void put_namespaces(void)
{
    static const char *const kinds[] = { "pid", "mnt", "uts", "ipc", "net", "cgroup", "user", "time" };

    obj_begin("ns");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char path[64];
        struct stat st;

        snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
        if (stat(path, &st) == 0)
            put_int(kinds[i], (long long)st.st_ino);
        else
            put_null(kinds[i]);
    }
    obj_end();
}

/*
 * One object per line of /proc/self/mountinfo (proc(5)):
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   (1)(2)(3)   (4)   (5)      (6)       (7...)  (-) (8)    (9)          (10)
 *
 * Field 7 is a variable number of optional fields ended by a lone "-", so we
 * walk to the "-" instead of counting.  (4) "root" is the path inside the
 * source filesystem: it tells a bind mount of a subdirectory apart.
 */
static void put_mounts(void)
{
    char *data = slurp("/proc/self/mountinfo", 16 << 20, NULL);
    char *save_line = NULL;

    arr_begin("mounts");
    for (char *line = data ? strtok_r(data, "\n", &save_line) : NULL; line;
         line = strtok_r(NULL, "\n", &save_line)) {
        char *field[64];
        int nfields = 0, dash = -1;
        char *rest = line, *f;

        /* strsep, not strtok: an empty source ("") is a real, empty field. */
        while ((f = strsep(&rest, " ")) != NULL && nfields < 64) {
            if (dash < 0 && nfields >= 6 && strcmp(f, "-") == 0)
                dash = nfields;
            field[nfields++] = f;
        }
        if (dash < 0 || nfields < dash + 4)
            continue;           /* malformed line: skip rather than guess */

        unescape_octal(field[3]);
        unescape_octal(field[4]);
        unescape_octal(field[dash + 2]);
        obj_begin(NULL);
        put_str("target", field[4]);
        put_str("root", field[3]);
        put_str("fstype", field[dash + 1]);
        put_str("source", field[dash + 2]);
        put_str("options", field[5]);
        put_str("super_options", field[dash + 3]);
        obj_end();
    }
    arr_end();
    free(data);
}

/* Numeric entries of /proc: the processes this pid namespace lets us see. */
static void put_pids(void)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;

    arr_begin("pids");
    while (dir && (de = readdir(dir)) != NULL)
        if (all_digits(de->d_name))
            put_int(NULL, atoll(de->d_name));
    arr_end();
    if (dir)
        closedir(dir);
}

static int cmd_info(void)
{
    struct utsname uts;
    char cwd[PATH_MAX];

    doc_begin();
    put_int("pid", getpid());
    put_int("ppid", getppid());
    put_int("uid", getuid());
    put_int("gid", getgid());
    put_int("euid", geteuid());
    put_int("egid", getegid());
    put_groups();
    put_file("uid_map", "/proc/self/uid_map");
    put_file("gid_map", "/proc/self/gid_map");
    put_file("setgroups", "/proc/self/setgroups");
    put_caps();
    put_int("no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    if (uname(&uts) == 0)
        put_str("hostname", uts.nodename);
    else
        put_null("hostname");
    put_namespaces();
    put_file("cgroup", "/proc/self/cgroup");
    /* getcwd fails (ENOENT) if the cwd is outside our root: report null. */
    if (getcwd(cwd, sizeof(cwd)))
        put_str("cwd", cwd);
    else
        put_null("cwd");
    put_mounts();
    put_pids();
    arr_begin("env");
    for (char **e = environ; e && *e; e++)
        put_str(NULL, *e);
    arr_end();
    doc_end();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* probe write PATH / probe read PATH                                       */
/*                                                                          */
/* A failure here is the answer the test wants (e.g. EROFS on a read-only  */
/* path, EACCES as an unprivileged user), so we report it and exit 0.      */
/* ------------------------------------------------------------------------ */

static void put_result(bool ok, int err)
{
    put_bool("ok", ok);
    put_int("errno", ok ? 0 : err);
    put_str("error", ok ? "" : strerror(err));
}

static int cmd_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int err = errno;
    bool ok = fd >= 0;

    if (ok) {
        ssize_t n = write(fd, "x", 1);

        err = errno;
        ok = n == 1;
        /* close() can report the real failure (e.g. EIO, EDQUOT on NFS). */
        if (close(fd) < 0 && ok) {
            err = errno;
            ok = false;
        }
    }
    doc_begin();
    put_str("path", path);
    put_result(ok, err);
    doc_end();
    return 0;
}

static int cmd_read(const char *path)
{
    size_t len = 0;
    char *data = slurp(path, 64 * 1024, &len);
    int err = errno;

    doc_begin();
    put_str("path", path);
    put_result(data != NULL, err);
    put_strn("data", data ? data : "", data ? len : 0);
    doc_end();
    free(data);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* probe signals                                                            */
/*                                                                          */
/* Checks signal forwarding and PID 1 semantics: as PID 1 of a pid          */
/* namespace, a signal with no handler is dropped by the kernel, so a test  */
/* that sees "signal 15" knows both that pyrun forwarded it and that the    */
/* handler was reached.                                                     */
/*                                                                          */
/* Self-pipe trick: the handler only write()s the signal number into a      */
/* pipe (write is async-signal-safe, printf is not), and the main loop      */
/* blocks in read() on that pipe.  That is pause() without its race: a      */
/* signal arriving between "check flag" and "pause()" would be lost until   */
/* the next one, while a byte in the pipe is never lost.                    */
/* ------------------------------------------------------------------------ */

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int signo)
{
    int saved = errno;          /* write() may clobber errno of the main loop */
    unsigned char b = (unsigned char)signo;

    /* Pipe full (many signals queued) means we drop one: acceptable. */
    (void)!write(signal_pipe[1], &b, 1);
    errno = saved;
}

static int cmd_signals(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
    struct sigaction sa;

    if (pipe2(signal_pipe, O_CLOEXEC) < 0) {
        perror("probe: pipe2");
        return 1;
    }
    /* Non-blocking write end: a handler must never block. */
    fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) < 0) {
            perror("probe: sigaction");
            return 1;
        }
    }

    /* Only now are the handlers in place: a test may send signals after this. */
    fputs("ready\n", stdout);
    fflush(stdout);

    for (;;) {
        unsigned char b;
        ssize_t n = read(signal_pipe[0], &b, 1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1) {
            perror("probe: read signal pipe");
            return 1;
        }
        printf("signal %d\n", b);
        fflush(stdout);
        if (b == SIGTERM || b == SIGINT)
            return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* probe zombie N                                                           */
/*                                                                          */
/* Makes N orphans for PID 1 to reap.  We fork a child, which forks N       */
/* grandchildren and exits at once; the grandchildren are now orphans and   */
/* the kernel reparents them to the pid namespace's init (or a subreaper).  */
/* They exit after 100 ms, i.e. after reparenting, so their zombies belong  */
/* to init: if init does not wait() for them they stay <defunct> forever.   */
/* We wait only for our direct child, never for the grandchildren.          */
/*                                                                          */
/* The child sends the grandchildren's pids back over a pipe so that a test */
/* can later check that /proc/<pid> is gone.                                */
/* ------------------------------------------------------------------------ */

static int cmd_zombie(long count)
{
    int fds[2];
    pid_t child;
    int status;

    if (count < 0 || count > 10000) {
        fprintf(stderr, "probe: zombie count out of range: %ld\n", count);
        return 2;
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("probe: pipe2");
        return 1;
    }
    fflush(stdout);             /* nothing buffered may be printed twice */
    child = fork();
    if (child < 0) {
        perror("probe: fork");
        return 1;
    }
    if (child == 0) {
        close(fds[0]);
        for (long i = 0; i < count; i++) {
            pid_t grandchild = fork();

            if (grandchild == 0) {
                /* Drop the pipe so the parent's read sees EOF without us. */
                close(fds[1]);
                sleep_ms(100);
                _exit(0);
            }
            if (grandchild > 0)
                (void)!write(fds[1], &grandchild, sizeof(grandchild));
        }
        _exit(0);
    }

    close(fds[1]);
    doc_begin();
    put_int("child", child);
    arr_begin("grandchildren");
    for (;;) {
        pid_t pid;
        ssize_t n = read(fds[0], &pid, sizeof(pid));

        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(pid))
            break;
        put_int(NULL, pid);
    }
    arr_end();
    close(fds[0]);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    doc_end();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* probe forks N                                                            */
/*                                                                          */
/* A fork loop that does not die of its own failures (a shell aborts its    */
/* script when fork fails): forks N children that pause, counts EAGAIN      */
/* refusals, prints {"forked", "refused", "errno"}, kills the children and  */
/* exits 0. Used to show that a pids limit holds and the container lives.  */
/* ------------------------------------------------------------------------ */

static int cmd_forks(long count)
{
    static pid_t kids[10000];
    long forked = 0, refused = 0;
    int last_errno = 0;

    if (count < 0 || count > 10000) {
        fprintf(stderr, "probe: fork count out of range: %ld\n", count);
        return 2;
    }
    fflush(stdout);
    for (long i = 0; i < count; i++) {
        pid_t pid = fork();

        if (pid == 0) {
            pause();
            _exit(0);
        }
        if (pid < 0) {
            refused++;
            last_errno = errno;
            continue;
        }
        kids[forked++] = pid;
    }
    for (long i = 0; i < forked; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < forked; i++)
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    doc_begin();
    put_int("forked", forked);
    put_int("refused", refused);
    put_int("errno", last_errno);
    doc_end();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* probe winsize                                                            */
/* ------------------------------------------------------------------------ */

static int cmd_winsize(void)
{
    struct winsize ws;

    doc_begin();
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) {
        put_int("rows", ws.ws_row);
        put_int("cols", ws.ws_col);
    } else {
        put_null("rows");
        put_null("cols");
    }
    put_bool("isatty_stdin", isatty(0));
    put_bool("isatty_stdout", isatty(1));
    doc_end();
    return 0;
}

/* ------------------------------------------------------------------------ */

static int usage(void)
{
    fputs("usage: probe [info]\n"
          "       probe write PATH\n"
          "       probe read PATH\n"
          "       probe signals\n"
          "       probe zombie N\n"
          "       probe forks N\n"
          "       probe exit N\n"
          "       probe winsize\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "info";

    if (strcmp(cmd, "info") == 0 && argc <= 2)
        return cmd_info();
    if (strcmp(cmd, "write") == 0 && argc == 3)
        return cmd_write(argv[2]);
    if (strcmp(cmd, "read") == 0 && argc == 3)
        return cmd_read(argv[2]);
    if (strcmp(cmd, "signals") == 0 && argc == 2)
        return cmd_signals();
    if (strcmp(cmd, "zombie") == 0 && argc == 3)
        return cmd_zombie(parse_number(argv[2]));
    if (strcmp(cmd, "forks") == 0 && argc == 3)
        return cmd_forks(parse_number(argv[2]));
    if (strcmp(cmd, "exit") == 0 && argc == 3)
        return (int)(parse_number(argv[2]) & 0xff);
    if (strcmp(cmd, "winsize") == 0 && argc == 2)
        return cmd_winsize();

    fprintf(stderr, "probe: unknown subcommand or wrong arguments: %s\n", cmd);
    return usage();
}
