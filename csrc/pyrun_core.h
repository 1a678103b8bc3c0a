/*
 * pyrun_core.h - the whole contract between pyrun's Python side and its C core.
 *
 * Python fills ONE struct pyrun_config completely and calls pyrun_spawn() once.
 * pyrun_spawn() clones the container's first process with the requested
 * namespaces; from then on that child runs only the C code in pyrun_core.c up
 * to execve(2). Why C and not Python: after clone in a (possibly
 * multi-threaded) interpreter only async-signal-safe code is legal, and the
 * child must never re-enter Python.
 *
 * The parent and the child talk over a SOCK_SEQPACKET socketpair ("sync
 * socket"); every message is one struct pyrun_msg. The child end is
 * close-on-exec, so when the child's execve succeeds the parent reads EOF:
 *
 *   child                                   parent (Python)
 *   ----------------------------------     ---------------------------------
 *   [CLONE_NEWUSER] USERNS_READY   ----->   write setgroups, uid_map, gid_map
 *                                  <-----   USERNS_DONE
 *   mounts, pivot_root, ...                 (prints TRACE messages it gets)
 *   [tty] PTY + master fd (SCM_RIGHTS) -->  keeps the pty master
 *   READY                          ----->   host-side set-up (cgroup, net)
 *                                  <-----   GO
 *   execve                                  EOF: the container runs
 *   (on any failure: ERROR{step, errno, text} and _exit(1))
 */
#ifndef PYRUN_CORE_H
#define PYRUN_CORE_H

#include <stdint.h>
#include <sys/types.h>

/* A mount the child makes inside the container before pivot_root.
 * target is an absolute path inside the container; it is resolved inside the
 * new root with openat2(RESOLVE_IN_ROOT), so a symlink in the image cannot
 * redirect it to the host. */
struct pyrun_mount {
    const char *source;  /* host path for binds, fs name otherwise */
    const char *target;  /* absolute path inside the container */
    const char *fstype;  /* NULL for a bind mount */
    unsigned long flags; /* MS_* flags */
    const char *data;    /* filesystem options, or NULL */
    int readonly;        /* bind mounts: remount read-only after binding */
    int is_file;         /* bind mounts: the target is a file, not a dir */
};

struct pyrun_config {
    uint64_t clone_flags; /* CLONE_NEW* flags for clone3(2) */
    int cgroup_fd;        /* >= 0: CLONE_INTO_CGROUP this cgroup dir fd */

    const char *rootfs;   /* host path of the prepared root (an overlay) */
    int readonly_rootfs;  /* --read-only */
    const char *hostname; /* set when CLONE_NEWUTS, may be NULL */

    const char *const *argv; /* NULL-terminated; argv[0] may need PATH lookup */
    const char *const *envp; /* NULL-terminated */
    const char *cwd;         /* working directory inside the container */

    uid_t uid; /* credentials of the process, inside its user namespace */
    gid_t gid;
    const gid_t *groups; /* supplementary groups */
    size_t ngroups;

    uint64_t cap_bounding; /* capability sets, one bit per capability */
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_inheritable;
    uint64_t cap_ambient;
    int no_new_privs;

    const struct pyrun_mount *mounts; /* after /proc, /sys, /dev */
    size_t nmounts;
    const char *const *masked_paths;   /* NULL-terminated */
    const char *const *readonly_paths; /* NULL-terminated */

    int stdio[3]; /* fds to become 0, 1, 2 in the child; -1 keeps the fd */
    int tty;      /* allocate a pty inside the container for 0, 1, 2 */
    int init_fd;  /* >= 0: exec this sealed memfd (pyrun-init) as PID 1 */
    int trace;    /* send a TRACE message for every step */
};

enum pyrun_msg_type {
    PYRUN_MSG_USERNS_READY = 1, /* child -> parent: write my id maps */
    PYRUN_MSG_USERNS_DONE,      /* parent -> child: maps written */
    PYRUN_MSG_PTY,              /* child -> parent: pty master attached */
    PYRUN_MSG_READY,            /* child -> parent: only execve is left */
    PYRUN_MSG_GO,               /* parent -> child: exec now */
    PYRUN_MSG_TRACE,            /* child -> parent: text of a step */
    PYRUN_MSG_ERROR,            /* child -> parent: step failed, errno */
};

/* The step that failed; Python maps STEP_EXEC + ENOENT to exit 127 etc. */
enum pyrun_step {
    PYRUN_STEP_NONE = 0,
    PYRUN_STEP_SETUP,  /* signals, pdeathsig, sync */
    PYRUN_STEP_MOUNT,  /* any mount, pivot_root, device node */
    PYRUN_STEP_TTY,
    PYRUN_STEP_USER,   /* groups, uid, gid, capabilities */
    PYRUN_STEP_CHDIR,
    PYRUN_STEP_EXEC,
    PYRUN_STEP_CLONE,  /* in the parent: clone3 itself failed */
};

#define PYRUN_MSG_TEXT 1024

struct pyrun_msg {
    int32_t type;  /* enum pyrun_msg_type */
    int32_t step;  /* enum pyrun_step, for ERROR */
    int32_t err;   /* errno, for ERROR */
    char text[PYRUN_MSG_TEXT]; /* NUL-terminated description */
};

struct pyrun_child {
    pid_t pid;   /* host pid of the container's first process */
    int pidfd;   /* pidfd of it (CLONE_PIDFD): race-free signals and wait */
    int sync_fd; /* parent end of the sync socket */
    int err;     /* errno when pyrun_spawn returns -1 */
};

/* Clone the container process described by cfg. Returns 0 and fills *child,
 * or -1 with child->err set (nothing is left behind then). */
int pyrun_spawn(const struct pyrun_config *cfg, struct pyrun_child *child);

/* Helpers for the parent, so Python needs no ctypes: */

/* openat2(2), which glibc does not wrap. With RESOLVE_IN_ROOT, `path` is
 * opened as if dir_fd were "/", so a symlink in an image (say /etc/passwd ->
 * /host/secret) cannot lead out; with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS a
 * layer being unpacked cannot redirect an entry through its own links. */
int pyrun_openat2(int dir_fd, const char *path, int flags, int mode, uint64_t resolve);

/* A user namespace fd whose uid_map and gid_map are both `map`. */
int pyrun_userns_fd(const char *map);

/* Bind `source` on `target` as an idmapped mount (mount_setattr(2)). */
int pyrun_idmap_mount(const char *source, const char *target, int userns_fd);

#endif
