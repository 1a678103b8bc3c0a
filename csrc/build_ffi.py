"""cffi build script for pyrun's C core (API mode, out-of-line).

setup.py names this file in ``cffi_modules``; building the package compiles
csrc/pyrun_core.c into the extension module ``pyrun._core``. The cdef below
is the subset of csrc/pyrun_core.h that Python uses; the real header is
included by the C source, so the compiler checks both agree.
"""


from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    typedef int... uid_t;
    typedef int... gid_t;
    typedef int... pid_t;

    struct pyrun_mount {
        const char *source;
        const char *target;
        const char *fstype;
        unsigned long flags;
        const char *data;
        int readonly;
        int is_file;
    };

    struct pyrun_config {
        uint64_t clone_flags;
        int cgroup_fd;
        const char *rootfs;
        int readonly_rootfs;
        const char *hostname;
        const char *const *argv;
        const char *const *envp;
        const char *cwd;
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t ngroups;
        uint64_t cap_bounding;
        uint64_t cap_effective;
        uint64_t cap_permitted;
        uint64_t cap_inheritable;
        uint64_t cap_ambient;
        int no_new_privs;
        const struct pyrun_mount *mounts;
        size_t nmounts;
        const char *const *masked_paths;
        const char *const *readonly_paths;
        int stdio[3];
        int tty;
        int init_fd;
        int trace;
    };

    enum pyrun_msg_type {
        PYRUN_MSG_USERNS_READY = 1,
        PYRUN_MSG_USERNS_DONE,
        PYRUN_MSG_PTY,
        PYRUN_MSG_READY,
        PYRUN_MSG_GO,
        PYRUN_MSG_TRACE,
        PYRUN_MSG_ERROR,
    };

    enum pyrun_step {
        PYRUN_STEP_NONE = 0,
        PYRUN_STEP_SETUP,
        PYRUN_STEP_MOUNT,
        PYRUN_STEP_TTY,
        PYRUN_STEP_USER,
        PYRUN_STEP_CHDIR,
        PYRUN_STEP_EXEC,
        PYRUN_STEP_CLONE,
    };

    #define PYRUN_MSG_TEXT 1024

    struct pyrun_msg {
        int32_t type;
        int32_t step;
        int32_t err;
        char text[1024];
    };

    struct pyrun_child {
        pid_t pid;
        int pidfd;
        int sync_fd;
        int err;
    };

    int pyrun_spawn(const struct pyrun_config *cfg, struct pyrun_child *child);
    int pyrun_openat2(int dir_fd, const char *path, int flags, int mode, uint64_t resolve);
    #define RESOLVE_NO_XDEV ...
    #define RESOLVE_NO_MAGICLINKS ...
    #define RESOLVE_NO_SYMLINKS ...
    #define RESOLVE_BENEATH ...
    #define RESOLVE_IN_ROOT ...
    int pyrun_userns_fd(const char *map);
    int pyrun_idmap_mount(const char *source, const char *target, int userns_fd);

    /* libc, for the parent's own mounts (the overlay root). */
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    #define MNT_DETACH ...
    """
)

ffibuilder.set_source(
    "pyrun._core",
    '#include <sys/mount.h>\n#include <linux/openat2.h>\n#include "pyrun_core.h"',
    sources=["csrc/pyrun_core.c"],
    include_dirs=["csrc"],
    extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
