/*
 * pyrun_core.c - everything between clone(2) and execve(2).
 *
 * pyrun_spawn() clones the container's first process with clone3(2). The
 * child then runs child_main(): a flat list of small steps, each of which
 * either succeeds or sends (step, errno, text) to the parent over the sync
 * socket and makes the child _exit(1). The child never returns into Python:
 * it is a copy of a Python process, and after clone only async-signal-safe
 * code is legal (see signal-safety(7); CPython's _posixsubprocess follows the
 * same rule). It does not call malloc(3), and it uses only the config the
 * parent built before clone.
 *
 * The protocol with the parent is described in pyrun_core.h.
 */
#define _GNU_SOURCE
#include "pyrun_core.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PATH_BUF 4096

/* State of the child, filled at its start and used by the steps. */
struct child {
    const struct pyrun_config *cfg;
    int sync_fd;
    int root_fd;         /* O_PATH fd of cfg->rootfs, opened before the userns handshake */
    int *src_fds;        /* O_PATH fds of bind mount sources, same reason */
    char program[PATH_BUF]; /* argv[0] resolved through PATH */
};

/* ---- messages to the parent ------------------------------------------- */

static int send_msg(int fd, const struct pyrun_msg *msg)
{
    /* SOCK_SEQPACKET keeps message boundaries: one send, one message. */
    ssize_t n;
    do {
        n = send(fd, msg, sizeof(*msg), MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*msg) ? 0 : -1;
}

/* vsnprintf is not on the async-signal-safe list, but it takes no lock and
 * does not allocate for these formats; the child is single-threaded. */
static int send_text(int fd, int type, int step, int err, const char *fmt, va_list ap)
{
    struct pyrun_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    msg.step = step;
    msg.err = err;
    vsnprintf(msg.text, sizeof(msg.text), fmt, ap);
    return send_msg(fd, &msg);
}

static void trace(struct child *c, const char *fmt, ...)
{
    if (!c->cfg->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    send_text(c->sync_fd, PYRUN_MSG_TRACE, 0, 0, fmt, ap);
    va_end(ap);
}

/* Report a failed step; returns -1 so callers can `return fail(...)`. */
static int fail(struct child *c, int step, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_text(c->sync_fd, PYRUN_MSG_ERROR, step, err, fmt, ap);
    va_end(ap);
    return -1;
}

static int send_simple(struct child *c, int type)
{
    struct pyrun_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    return send_msg(c->sync_fd, &msg);
}

/* Block until the parent sends `type`. EOF means the parent died or gave up. */
static int wait_msg(struct child *c, int type)
{
    struct pyrun_msg msg;
    ssize_t n;
    do {
        n = recv(c->sync_fd, &msg, sizeof(msg), 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(msg))
        return fail(c, PYRUN_STEP_SETUP, n < 0 ? errno : EPIPE, "wait for the parent");
    if (msg.type != type)
        return fail(c, PYRUN_STEP_SETUP, EPROTO, "unexpected message %d from the parent", msg.type);
    return 0;
}

/* ---- paths inside the new root ---------------------------------------- */

/*
 * Open `path` inside the container root, creating missing components
 * (directories, and the last one as a file if is_file). Every lookup uses
 * openat2(2) with RESOLVE_IN_ROOT, so ".." and absolute symlinks in the image
 * stay inside the root: an image cannot point a mount target at the host.
 * Returns an O_PATH fd; mount(2) then targets "/proc/self/fd/N".
 */
static int open_in_root_depth(struct child *c, const char *path, int create, int is_file,
                              int depth);

static int open_in_root(struct child *c, const char *path, int create, int is_file)
{
    return open_in_root_depth(c, path, create, is_file, 0);
}

/* A component that exists but cannot be opened is a dangling symlink: go on
 * from where it points, still inside the root, as runc's MkdirAllInRoot
 * does. `rest` is what follows the component in the original path. */
static int follow_dangling(struct child *c, int parent, const char *name, const char *prefix,
                           const char *rest, int create, int is_file, int depth)
{
    char link[PATH_BUF], next[PATH_BUF];
    if (depth >= 40) {
        errno = ELOOP;
        return -1;
    }
    ssize_t n = readlinkat(parent, name, link, sizeof(link) - 1);
    if (n < 0)
        return -1;
    link[n] = '\0';
    int len;
    if (link[0] == '/') {
        len = snprintf(next, sizeof(next), "%s/%s", link, rest);
    } else {
        /* relative to the directory holding the link */
        const char *slash = strrchr(prefix, '/');
        int dirlen = slash ? (int)(slash - prefix) : 0;
        len = snprintf(next, sizeof(next), "%.*s/%s/%s", dirlen, prefix, link, rest);
    }
    if (len < 0 || (size_t)len >= sizeof(next)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open_in_root_depth(c, next, create, is_file, depth + 1);
}

static int open_in_root_depth(struct child *c, const char *path, int create, int is_file,
                              int depth)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

    int fd = syscall(SYS_openat2, c->root_fd, path, &how, sizeof(how));
    if (fd >= 0 || errno != ENOENT || !create)
        return fd;

    /* Walk the path one component at a time, creating what is missing. */
    char prefix[PATH_BUF];
    size_t len = strlen(path);
    if (len >= sizeof(prefix)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int parent = dup(c->root_fd);
    if (parent < 0)
        return -1;
    size_t i = 0;
    while (i < len) {
        while (path[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        int last = (i >= len) || path[i + strspn(path + i, "/")] == '\0';
        fd = syscall(SYS_openat2, c->root_fd, prefix, &how, sizeof(how));
        if (fd < 0 && errno == ENOENT) {
            char name[256];
            size_t nlen = i - start;
            if (nlen >= sizeof(name)) {
                close(parent);
                errno = ENAMETOOLONG;
                return -1;
            }
            memcpy(name, path + start, nlen);
            name[nlen] = '\0';
            int r;
            if (last && is_file) {
                r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (r >= 0)
                    close(r);
            } else {
                r = mkdirat(parent, name, 0755);
            }
            if (r < 0 && errno != EEXIST) {
                close(parent);
                return -1;
            }
            fd = syscall(SYS_openat2, c->root_fd, prefix, &how, sizeof(how));
            if (fd < 0 && errno == ENOENT && r < 0) {
                fd = follow_dangling(c, parent, name, prefix, path + i, create, is_file, depth);
                close(parent);
                return fd;
            }
        }
        close(parent);
        if (fd < 0)
            return -1;
        parent = fd;
    }
    return parent;
}

static void fd_path(char *buf, size_t size, int fd)
{
    snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/* The MS_* flags a remount must keep: in a user namespace the kernel refuses
 * a remount that would clear nosuid/nodev/noexec/atime flags locked by the
 * more privileged mount namespace it was copied from (mount_namespaces(7)). */
static unsigned long locked_flags(const char *path)
{
    struct statvfs st;
    unsigned long flags = 0;
    if (statvfs(path, &st) < 0)
        return 0;
    if (st.f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    return flags;
}

/* A bind mount cannot be made read-only in the same mount(2) call: the
 * MS_RDONLY of the first call is ignored, it needs a MS_REMOUNT|MS_BIND. */
static int remount_ro(const char *path)
{
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(path), NULL);
}

/* Mount onto a target inside the root, creating it. source may be a
 * "/proc/self/fd/N" path. */
static int mount_in_root(struct child *c, const char *source, const char *target,
                         const char *fstype, unsigned long flags, const char *data, int is_file)
{
    int fd = open_in_root(c, target, 1, is_file);
    if (fd < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "create mount point %s", target);
    char where[64];
    fd_path(where, sizeof(where), fd);
    int r = mount(source, where, fstype, flags, data);
    int err = errno;
    close(fd);
    if (r < 0)
        return fail(c, PYRUN_STEP_MOUNT, err, "mount %s on %s", fstype ? fstype : source, target);
    trace(c, "mount %s on %s%s%s", fstype ? fstype : source, target, data ? " with " : "",
          data ? data : "");
    return 0;
}

/* ---- the steps, in order ---------------------------------------------- */

static int reset_signals(struct child *c)
{
    /* The parent (Python) has handlers and maybe a blocked mask; the program
     * we exec must start with default dispositions and nothing blocked,
     * because execve(2) keeps the mask and ignored signals. */
    sigset_t all;
    sigemptyset(&all);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        signal(sig, SIG_DFL);
    }
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "reset signal mask");
    /* If pyrun dies, the container dies with it (prctl(2) PR_SET_PDEATHSIG);
     * a detached container will get a monitor process as its parent. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "prctl PR_SET_PDEATHSIG");
    umask(022);
    return 0;
}

/* Open the root and bind sources while we still have the host's fsuid: after
 * the user namespace handshake we are its root, an unprivileged uid on the
 * host, which may not be able to walk a 0700 host directory. */
static int open_host_paths(struct child *c)
{
    const struct pyrun_config *cfg = c->cfg;
    c->root_fd = open(cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "open root %s", cfg->rootfs);
    for (size_t i = 0; i < cfg->nmounts; i++) {
        c->src_fds[i] = -1;
        if (cfg->mounts[i].fstype)
            continue;
        c->src_fds[i] = open(cfg->mounts[i].source, O_PATH | O_CLOEXEC);
        if (c->src_fds[i] < 0)
            return fail(c, PYRUN_STEP_MOUNT, errno, "open bind source %s", cfg->mounts[i].source);
    }
    return 0;
}

static int sync_userns(struct child *c)
{
    /* We are in a new user namespace but nothing maps into it yet: only a
     * process in the parent namespace may write /proc/PID/uid_map and
     * gid_map (user_namespaces(7)). Ask the parent, wait, then become the
     * namespace's root so that files we create have a mapped owner. */
    if (send_simple(c, PYRUN_MSG_USERNS_READY) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "send userns ready");
    if (wait_msg(c, PYRUN_MSG_USERNS_DONE) < 0)
        return -1;
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "become root of the user namespace");
    trace(c, "uid/gid maps are written: now root of the new user namespace");
    return 0;
}

static int bring_up_loopback(struct child *c)
{
    /* A new network namespace has only `lo`, and it is down: nothing, not
     * even 127.0.0.1, would work (network_namespaces(7)). Docker's
     * --network none brings it up; so do we, with the classic ioctl. */
    if (!(c->cfg->clone_flags & CLONE_NEWNET))
        return 0;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int err = errno;
    close(s);
    if (r < 0)
        return fail(c, PYRUN_STEP_SETUP, err, "bring up lo");
    trace(c, "bring up lo in the new network namespace");
    return 0;
}

static int make_root_private(struct child *c)
{
    /* Our new mount namespace starts as a copy of the host's, with the same
     * propagation: without MS_PRIVATE the mounts below would propagate back
     * to the host's shared mounts (mount_namespaces(7)). */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "make / rprivate");
    trace(c, "mount --make-rprivate /: nothing mounted from now on reaches the host");
    /* pivot_root(2) needs new_root to be a mount point; a bind of the root
     * onto itself makes it one whatever the caller prepared. */
    char src[64];
    fd_path(src, sizeof(src), c->root_fd);
    if (mount(src, src, NULL, MS_BIND | MS_REC, NULL) < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "bind %s onto itself", c->cfg->rootfs);
    /* Reopen by name: a lookup by name lands on the new mount stacked on
     * top, while /proc/self/fd/N would jump to the old (in a user namespace,
     * locked) mount, which pivot_root(2) refuses with EINVAL. This runs
     * before the user namespace handshake, while our fsuid is still the
     * host's and can walk any directory on the way. */
    int fd = open(c->cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "open root %s", c->cfg->rootfs);
    close(c->root_fd);
    c->root_fd = fd;
    trace(c, "bind %s onto itself: the future / is a mount point", c->cfg->rootfs);
    return 0;
}

static int mount_proc(struct child *c)
{
    /* A fresh procfs shows the pid namespace of the process that mounts it:
     * ours, where we are PID 1 (pid_namespaces(7)). */
    return mount_in_root(c, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0);
}

static int mount_sys(struct child *c)
{
    unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY;
    int fd = open_in_root(c, "/sys", 1, 0);
    if (fd < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "create mount point /sys");
    char where[64];
    fd_path(where, sizeof(where), fd);
    /* sysfs can only be mounted by the owner of the network namespace; with
     * the host's network inside a user namespace, bind the host's /sys. */
    if (mount("sysfs", where, "sysfs", flags, NULL) == 0) {
        trace(c, "mount sysfs on /sys read-only");
    } else if (errno == EPERM &&
               mount("/sys", where, NULL, MS_BIND | MS_REC, NULL) == 0 && remount_ro(where) == 0) {
        trace(c, "bind the host's /sys on /sys read-only (sysfs needs our own netns)");
    } else {
        int err = errno;
        close(fd);
        return fail(c, PYRUN_STEP_MOUNT, err, "mount sysfs on /sys");
    }
    close(fd);
    /* cgroup2 at /sys/fs/cgroup: with a cgroup namespace it shows only the
     * container's own group as its root (cgroup_namespaces(7)). It may be
     * refused (host cgroup ns inside a user ns); the container runs without. */
    fd = open_in_root(c, "/sys/fs/cgroup", 0, 0);
    if (fd >= 0) {
        fd_path(where, sizeof(where), fd);
        if (mount("cgroup2", where, "cgroup2", flags, NULL) == 0)
            trace(c, "mount cgroup2 on /sys/fs/cgroup read-only");
        else
            trace(c, "mount cgroup2 on /sys/fs/cgroup refused (%s): left out", strerror(errno));
        close(fd);
    }
    return 0;
}

struct device {
    const char *name;
    unsigned int major, minor;
};

/* The OCI runtime-spec default devices (config-linux.md, "Default Devices"). */
static const struct device devices[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static int create_device(struct child *c, const struct device *d)
{
    char target[64];
    snprintf(target, sizeof(target), "/dev/%s", d->name);
    int dev = open_in_root(c, "/dev", 0, 0);
    if (dev < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "open /dev");
    int r = mknodat(dev, d->name, S_IFCHR | 0666, makedev(d->major, d->minor));
    /* mknod's mode passes through our umask (022): set 0666 explicitly,
     * or a non-root user could not write /dev/null. */
    if (r == 0)
        r = fchmodat(dev, d->name, 0666, 0);
    int err = errno;
    close(dev);
    if (r == 0) {
        trace(c, "mknod %s c %u %u", target, d->major, d->minor);
        return 0;
    }
    /* A user namespace may not create device nodes (the kernel refuses
     * mknod without CAP_MKNOD in the initial namespace): bind the host's. */
    if (err != EPERM)
        return fail(c, PYRUN_STEP_MOUNT, err, "mknod %s", target);
    char host[64];
    snprintf(host, sizeof(host), "/dev/%s", d->name);
    return mount_in_root(c, host, target, NULL, MS_BIND, NULL, 1);
}

static int symlink_in_dev(struct child *c, const char *to, const char *name)
{
    int dev = open_in_root(c, "/dev", 0, 0);
    if (dev < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "open /dev");
    int r = symlinkat(to, dev, name);
    int err = errno;
    close(dev);
    if (r < 0 && err != EEXIST)
        return fail(c, PYRUN_STEP_MOUNT, err, "symlink /dev/%s -> %s", name, to);
    return 0;
}

static int mount_dev(struct child *c)
{
    /* /dev is a small tmpfs holding only the devices a container may use,
     * never the host's /dev (OCI runtime-spec, Docker). */
    if (mount_in_root(c, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME,
                      "mode=755,size=65536k", 0) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
        if (create_device(c, &devices[i]) < 0)
            return -1;
    /* A private devpts instance: the container sees only its own ptys.
     * gid=5 (tty) may be unmapped in a user namespace: retry without it. */
    if (mount_in_root(c, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620,gid=5", 0) < 0) {
        if (mount_in_root(c, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                          "newinstance,ptmxmode=0666,mode=0620", 0) < 0)
            return -1;
    }
    if (mount_in_root(c, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=1777,size=65536k", 0) < 0)
        return -1;
    /* mqueue belongs to the ipc namespace; with the host's ipc namespace
     * inside a user namespace the kernel refuses it, and we go without. */
    int fd = open_in_root(c, "/dev/mqueue", 1, 0);
    if (fd >= 0) {
        char where[64];
        fd_path(where, sizeof(where), fd);
        if (mount("mqueue", where, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
            trace(c, "mount mqueue on /dev/mqueue");
        else
            trace(c, "mount mqueue on /dev/mqueue refused (%s): left out", strerror(errno));
        close(fd);
    }
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"},     {"/proc/self/fd/0", "stdin"},
        {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
        {"pts/ptmx", "ptmx"},       {"/proc/kcore", "core"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (symlink_in_dev(c, links[i][0], links[i][1]) < 0)
            return -1;
    trace(c, "/dev: null zero full random urandom tty, pts, shm, mqueue, fd/stdin/stdout/stderr links");
    return 0;
}

static int mount_user_mounts(struct child *c)
{
    const struct pyrun_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nmounts; i++) {
        const struct pyrun_mount *m = &cfg->mounts[i];
        char src[64];
        const char *source = m->source;
        if (!m->fstype) {
            fd_path(src, sizeof(src), c->src_fds[i]);
            source = src;
        }
        int fd = open_in_root(c, m->target, 1, m->is_file);
        if (fd < 0)
            return fail(c, PYRUN_STEP_MOUNT, errno, "create mount point %s", m->target);
        char where[64];
        fd_path(where, sizeof(where), fd);
        int r = mount(source, where, m->fstype, m->flags, m->data);
        int err = errno;
        close(fd);
        if (r == 0 && !m->fstype && m->readonly) {
            /* Reopen by path to reach the new mount, not the one below. */
            fd = open_in_root(c, m->target, 0, 0);
            r = fd;
            if (fd >= 0) {
                fd_path(where, sizeof(where), fd);
                r = remount_ro(where);
                err = errno;
                close(fd);
            }
        }
        if (r < 0)
            return fail(c, PYRUN_STEP_MOUNT, err, "mount %s on %s", m->source, m->target);
        trace(c, "mount %s on %s%s", m->fstype ? m->fstype : m->source, m->target,
              m->readonly ? " read-only" : "");
        if (!m->fstype)
            close(c->src_fds[i]);
    }
    return 0;
}

static int mask_paths(struct child *c)
{
    /* Hide host information that procfs and sysfs would leak: files get
     * /dev/null bound over them, directories an empty read-only tmpfs. */
    int null_fd = open_in_root(c, "/dev/null", 0, 0);
    if (null_fd < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "open /dev/null");
    char null_path[64];
    fd_path(null_path, sizeof(null_path), null_fd);
    for (const char *const *p = c->cfg->masked_paths; p && *p; p++) {
        int fd = open_in_root(c, *p, 0, 0);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            close(null_fd);
            return fail(c, PYRUN_STEP_MOUNT, errno, "open masked path %s", *p);
        }
        struct stat st;
        char where[64];
        fd_path(where, sizeof(where), fd);
        int r = fstat(fd, &st);
        if (r == 0 && S_ISDIR(st.st_mode))
            r = mount("tmpfs", where, "tmpfs", MS_RDONLY, "size=0");
        else if (r == 0)
            r = mount(null_path, where, NULL, MS_BIND, NULL);
        int err = errno;
        close(fd);
        if (r < 0) {
            close(null_fd);
            return fail(c, PYRUN_STEP_MOUNT, err, "mask %s", *p);
        }
        trace(c, "mask %s", *p);
    }
    close(null_fd);
    return 0;
}

static int readonly_paths(struct child *c)
{
    for (const char *const *p = c->cfg->readonly_paths; p && *p; p++) {
        int fd = open_in_root(c, *p, 0, 0);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            return fail(c, PYRUN_STEP_MOUNT, errno, "open read-only path %s", *p);
        }
        char where[64];
        fd_path(where, sizeof(where), fd);
        int r = mount(where, where, NULL, MS_BIND | MS_REC, NULL);
        close(fd);
        if (r == 0) {
            /* Reopen: the path now resolves to the new bind mount. */
            fd = open_in_root(c, *p, 0, 0);
            if (fd < 0)
                return fail(c, PYRUN_STEP_MOUNT, errno, "reopen %s", *p);
            fd_path(where, sizeof(where), fd);
            r = remount_ro(where);
            close(fd);
        }
        if (r < 0)
            return fail(c, PYRUN_STEP_MOUNT, errno, "make %s read-only", *p);
        trace(c, "read-only %s", *p);
    }
    return 0;
}

static int make_workdir(struct child *c)
{
    /* Docker creates a missing working directory (WORKDIR semantics). */
    if (!c->cfg->cwd)
        return 0;
    int fd = open_in_root(c, c->cfg->cwd, 1, 0);
    if (fd < 0)
        return fail(c, PYRUN_STEP_CHDIR, errno, "create working directory %s", c->cfg->cwd);
    close(fd);
    return 0;
}

static int pivot_to_root(struct child *c)
{
    /* pivot_root(".", ".") stacks the old root on top of the new one at
     * "/"; detaching it leaves only the new root. Unlike chroot(2) this
     * leaves no path back to the host's tree (pivot_root(2), NOTES). */
    if (fchdir(c->root_fd) < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "chdir to the new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "pivot_root to %s", c->cfg->rootfs);
    if (umount2(".", MNT_DETACH) < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "detach the old root");
    if (chdir("/") < 0)
        return fail(c, PYRUN_STEP_MOUNT, errno, "chdir /");
    close(c->root_fd);
    c->root_fd = -1;
    trace(c, "pivot_root to %s and detach the old root: / is now the container's", c->cfg->rootfs);
    if (c->cfg->readonly_rootfs) {
        if (remount_ro("/") < 0)
            return fail(c, PYRUN_STEP_MOUNT, errno, "remount / read-only");
        trace(c, "remount / read-only");
    }
    return 0;
}

static int set_hostname(struct child *c)
{
    const char *name = c->cfg->hostname;
    if (!name || !(c->cfg->clone_flags & CLONE_NEWUTS))
        return 0;
    if (sethostname(name, strlen(name)) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "sethostname %s", name);
    trace(c, "sethostname %s (in the new uts namespace)", name);
    return 0;
}

static int send_fd(struct child *c, int type, int fd)
{
    struct pyrun_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof(control));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control, .msg_controllen = sizeof(control)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(c->sync_fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(msg) ? 0 : -1;
}

static int setup_stdio(struct child *c)
{
    const struct pyrun_config *cfg = c->cfg;
    /* A new session: the container is not in pyrun's process group, so a
     * Ctrl-C on the caller's terminal reaches pyrun only, which forwards it. */
    if (setsid() < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "setsid");
    if (!cfg->tty) {
        for (int i = 0; i < 3; i++)
            if (cfg->stdio[i] >= 0 && cfg->stdio[i] != i && dup2(cfg->stdio[i], i) < 0)
                return fail(c, PYRUN_STEP_TTY, errno, "dup2 fd %d", i);
        return 0;
    }
    /* The pty is made inside the container's own devpts, so the slave is a
     * device the container can see; the master goes to the parent. */
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "open /dev/ptmx");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "unlock pty");
    /* TIOCGPTPEER opens the slave from the master, with no path lookup. */
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "open the pty slave");
    if (send_fd(c, PYRUN_MSG_PTY, master) < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "send the pty master");
    close(master);
    /* With --init, the init makes the tty its child's controlling terminal. */
    if (cfg->init_fd < 0 && ioctl(slave, TIOCSCTTY, 0) < 0)
        return fail(c, PYRUN_STEP_TTY, errno, "make the pty the controlling terminal");
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0)
            return fail(c, PYRUN_STEP_TTY, errno, "dup2 pty to fd %d", i);
    if (slave > 2)
        close(slave);
    trace(c, "allocate a pty in the container's devpts, stdio on its slave");
    return 0;
}

static int close_other_fds(struct child *c)
{
    /* Only 0, 1, 2 cross execve: every other inherited fd (pyrun's files,
     * sockets, the sync socket) is marked close-on-exec. Marking, not
     * closing, keeps the sync socket and the init memfd usable until then. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "close_range");
    return 0;
}

static int set_user(struct child *c)
{
    const struct pyrun_config *cfg = c->cfg;
    /* Keep the permitted set across the uid change below, so that capset
     * decides what remains (capabilities(7), "Effect of user ID changes"). */
    if (prctl(PR_SET_KEEPCAPS, 1) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "prctl PR_SET_KEEPCAPS");
    /* The bounding set caps what any later execve can give (even to root,
     * whose file capabilities count as all-ones), so it is the real limit.
     * Dropping needs CAP_SETPCAP, hence before capset. */
    for (int cap = 0; cap < 64; cap++) {
        if (cfg->cap_bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap) < 0 && errno != EINVAL)
            return fail(c, PYRUN_STEP_USER, errno, "drop capability %d from the bounding set", cap);
    }
    if (setgroups(cfg->ngroups, cfg->groups) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "setgroups");
    if (setresgid(cfg->gid, cfg->gid, cfg->gid) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "setresgid %u", (unsigned)cfg->gid);
    if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "setresuid %u", (unsigned)cfg->uid);
    trace(c, "setgroups (%zu groups), setresgid %u, setresuid %u", cfg->ngroups,
          (unsigned)cfg->gid, (unsigned)cfg->uid);

    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(cfg->cap_effective >> (32 * i));
        data[i].permitted = (uint32_t)(cfg->cap_permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(cfg->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return fail(c, PYRUN_STEP_USER, errno, "capset");
    for (int cap = 0; cap < 64; cap++) {
        if (!(cfg->cap_ambient & (1ULL << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return fail(c, PYRUN_STEP_USER, errno, "raise ambient capability %d", cap);
    }
    trace(c, "capabilities: bounding=%016llx effective=%016llx", (unsigned long long)cfg->cap_bounding,
          (unsigned long long)cfg->cap_effective);
    if (cfg->no_new_privs) {
        /* No execve may grant privileges again: setuid bits and file
         * capabilities stop working (prctl(2) PR_SET_NO_NEW_PRIVS). */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return fail(c, PYRUN_STEP_USER, errno, "prctl PR_SET_NO_NEW_PRIVS");
        trace(c, "no_new_privs set");
    }
    /* The parent-death signal is cleared when credentials change. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return fail(c, PYRUN_STEP_SETUP, errno, "prctl PR_SET_PDEATHSIG");
    return 0;
}

static int change_dir(struct child *c)
{
    const char *cwd = c->cfg->cwd ? c->cfg->cwd : "/";
    if (chdir(cwd) < 0)
        return fail(c, PYRUN_STEP_CHDIR, errno, "chdir %s", cwd);
    return 0;
}

static const char *env_path(const struct pyrun_config *cfg)
{
    for (const char *const *e = cfg->envp; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            return *e + 5;
    return DEFAULT_PATH;
}

/* Find argv[0] as execvp(3) would, but here, so that "not found" (127) and
 * "not executable" (126) are known before exec, with or without --init. */
static int resolve_program(struct child *c)
{
    const char *name = c->cfg->argv[0];
    if (!name || !*name)
        return fail(c, PYRUN_STEP_EXEC, ENOENT, "exec: no command given");
    if (strchr(name, '/')) {
        if ((size_t)snprintf(c->program, sizeof(c->program), "%s", name) >= sizeof(c->program))
            return fail(c, PYRUN_STEP_EXEC, ENAMETOOLONG, "exec %s", name);
        return 0;
    }
    const char *path = env_path(c->cfg);
    int saw_eacces = 0;
    while (*path) {
        size_t len = strcspn(path, ":");
        char candidate[PATH_BUF];
        if (len == 0)
            snprintf(candidate, sizeof(candidate), "./%s", name);
        else
            snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)len, path, name);
        struct stat st;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(candidate, X_OK) == 0) {
                memcpy(c->program, candidate, sizeof(candidate));
                return 0;
            }
            saw_eacces = 1;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return fail(c, PYRUN_STEP_EXEC, saw_eacces ? EACCES : ENOENT, "exec %s", name);
}

static int exec_program(struct child *c)
{
    const struct pyrun_config *cfg = c->cfg;
    char *const *envp = (char *const *)cfg->envp;
    if (cfg->init_fd < 0) {
        trace(c, "execve %s", c->program);
        execve(c->program, (char *const *)cfg->argv, envp);
        return fail(c, PYRUN_STEP_EXEC, errno, "exec %s", cfg->argv[0]);
    }
    /* --init: PID 1 is pyrun-init, run from a sealed memfd so that nothing in
     * the container can rewrite it through /proc/1/exe. It gets
     * "pyrun-init -- PROGRAM ARGS...". */
    size_t n = 0;
    while (cfg->argv[n])
        n++;
    const char *argv[n + 3];
    argv[0] = "pyrun-init";
    argv[1] = "--";
    argv[2] = c->program;
    for (size_t i = 1; i <= n; i++)
        argv[i + 2] = cfg->argv[i];
    trace(c, "execveat the sealed pyrun-init memfd as PID 1, running %s", c->program);
    syscall(SYS_execveat, cfg->init_fd, "", (char *const *)argv, envp, AT_EMPTY_PATH);
    return fail(c, PYRUN_STEP_EXEC, errno, "exec pyrun-init");
}

#define STEP(call)           \
    do {                     \
        if ((call) < 0)      \
            _exit(1);        \
    } while (0)

static void child_main(const struct pyrun_config *cfg, int sync_fd)
{
    int src_fds[cfg->nmounts + 1];
    struct child c = {.cfg = cfg, .sync_fd = sync_fd, .root_fd = -1, .src_fds = src_fds};

    STEP(reset_signals(&c));
    STEP(open_host_paths(&c));
    STEP(make_root_private(&c));
    if (cfg->clone_flags & CLONE_NEWUSER)
        STEP(sync_userns(&c));
    STEP(mount_proc(&c));
    STEP(mount_sys(&c));
    STEP(mount_dev(&c));
    STEP(mount_user_mounts(&c));
    STEP(mask_paths(&c));
    STEP(readonly_paths(&c));
    STEP(make_workdir(&c));
    STEP(pivot_to_root(&c));
    STEP(set_hostname(&c));
    STEP(bring_up_loopback(&c));
    STEP(setup_stdio(&c));
    STEP(close_other_fds(&c));
    STEP(set_user(&c));
    STEP(change_dir(&c));
    STEP(resolve_program(&c));
    if (send_simple(&c, PYRUN_MSG_READY) < 0)
        _exit(1);
    STEP(wait_msg(&c, PYRUN_MSG_GO));
    exec_program(&c);
    _exit(1);
}

int pyrun_spawn(const struct pyrun_config *cfg, struct pyrun_child *child)
{
    int sv[2];
    memset(child, 0, sizeof(*child));
    child->pidfd = child->sync_fd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        child->err = errno;
        return -1;
    }

    /* clone3(2) with no stack behaves like fork(2): the child continues on
     * a copy of our stack. CLONE_PIDFD gives a pidfd that cannot be confused
     * with a recycled pid; CLONE_INTO_CGROUP (when cgroup_fd >= 0) starts
     * the child inside its cgroup, before it runs any code. */
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = cfg->clone_flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (cfg->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cfg->cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        child->err = errno;
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(cfg, sv[1]);
        _exit(1); /* not reached */
    }
    close(sv[1]);
    child->pid = (pid_t)pid;
    child->pidfd = pidfd;
    child->sync_fd = sv[0];
    return 0;
}

int pyrun_openat2(int dir_fd, const char *path, int flags, int mode, uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (uint64_t)(flags & O_CREAT ? mode : 0);
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
}

/* ---- parent-side helpers: idmapped layers for --userns private --------- */

/*
 * A user namespace holding `map` (one uid_map/gid_map line), as an fd.
 * The kernel wants a user namespace, not a mapping, to idmap a mount
 * (mount_setattr(2), MOUNT_ATTR_IDMAP); a namespace lives as long as a
 * process or an fd holds it, so a short-lived child makes it and exits.
 * The child runs no Python: it blocks on a pipe until we close it.
 */
int pyrun_userns_fd(const char *map)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        int err = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = err;
        return -1;
    }
    if (pid == 0) {
        char byte;
        close(pipefd[1]);
        while (read(pipefd[0], &byte, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(pipefd[0]);

    int fd = -1, err = 0;
    static const char *const files[] = {"uid_map", "gid_map"};
    for (size_t i = 0; i < 2 && !err; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/%s", pid, files[i]);
        int mfd = open(path, O_WRONLY | O_CLOEXEC);
        if (mfd < 0 || write(mfd, map, strlen(map)) != (ssize_t)strlen(map))
            err = errno;
        if (mfd >= 0)
            close(mfd);
    }
    if (!err) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            err = errno;
    }
    close(pipefd[1]); /* the child reads EOF and exits */
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    errno = err;
    return err ? -1 : fd;
}

/*
 * Mount a copy of `source` at `target`, idmapped through userns_fd: a file
 * owned by host uid 0 appears as the namespace's root, i.e. as host uid
 * 100000 (for "0 100000 65536"), without copying or chowning anything.
 * open_tree(2) clones the mount detached, mount_setattr(2) sets the idmap
 * (only allowed on a detached mount), move_mount(2) attaches it.
 * Fails with EINVAL where the filesystem does not support idmapped mounts
 * (e.g. tmpfs before Linux 6.3); the caller falls back to a shifted copy.
 */
int pyrun_idmap_mount(const char *source, const char *target, int userns_fd)
{
    int tree = open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0)
        return -1;
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    /* Read-only too: an image layer is shared by every container. */
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY;
    attr.userns_fd = (uint64_t)userns_fd;
    int r = mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr));
    if (r == 0)
        r = move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    int err = errno;
    close(tree);
    errno = err;
    return r;
}
