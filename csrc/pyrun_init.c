/*
 * pyrun_init.c - the PID 1 of `pyrun run --init` (the tini/catatonit model).
 *
 *   pyrun-init -- /resolved/program arg...
 *
 * Why a container wants an init:
 * - PID 1 of a pid namespace gets no default signal actions: a signal it has
 *   no handler for is simply dropped (pid_namespaces(7)). Most programs never
 *   expected to be PID 1, so SIGTERM would do nothing to them. The init
 *   catches every signal and forwards it to the program, which is not PID 1
 *   and therefore gets normal default actions.
 * - Orphaned processes are re-parented to PID 1, which must wait(2) for them
 *   or they stay zombies forever. The init reaps every child.
 *
 * pyrun runs this static binary from a sealed memfd (never a host file the
 * container could rewrite through /proc/1/exe). The program path has been
 * resolved by pyrun's C core already, so "not found" is reported there.
 * Built with: gcc -static -Os -Wall -Wextra -Werror.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals the init passes on to the program. SIGCHLD is ours. */
static const int forwarded[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM,
};

static int usage(void)
{
    fprintf(stderr, "usage: pyrun-init -- PROGRAM [ARG...]\n");
    return 2;
}

/* The wait status as a shell reports it: the code, or 128+N for signal N. */
static int exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

static void run_program(char **argv, const sigset_t *saved)
{
    /* The program must start as if no init were there: default dispositions,
     * the original (empty) mask, its own session. */
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        signal(forwarded[i], SIG_DFL);
    signal(SIGTSTP, SIG_DFL);
    signal(SIGTTIN, SIG_DFL);
    signal(SIGTTOU, SIG_DFL);
    sigprocmask(SIG_SETMASK, saved, NULL);
    /* With -t, stdin is the container's pty: make it our controlling
     * terminal so that ^C and job control reach the program's group. */
    if (setsid() >= 0 && isatty(STDIN_FILENO))
        ioctl(STDIN_FILENO, TIOCSCTTY, 0);
    if (strchr(argv[0], '/'))
        execv(argv[0], argv);
    else
        execvp(argv[0], argv);
    int err = errno;
    fprintf(stderr, "pyrun-init: exec %s: %s\n", argv[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--") != 0)
        return usage();

    /* An inherited SIG_IGN for SIGCHLD would make the kernel reap our
     * children itself (sigaction(2), SA_NOCLDWAIT semantics): the program's
     * exit status would be lost. pyrun resets dispositions before exec;
     * be safe when run any other way too. */
    signal(SIGCHLD, SIG_DFL);

    /* Run by hand (not PID 1), still inherit orphans so they get reaped. */
    if (getpid() != 1)
        prctl(PR_SET_CHILD_SUBREAPER, 1);

    /* Block what we handle BEFORE fork: a signal arriving between fork and
     * the loop below then waits in the pending set instead of being lost. */
    sigset_t handled, saved;
    sigemptyset(&handled);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaddset(&handled, forwarded[i]);
    sigaddset(&handled, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &handled, &saved) < 0) {
        perror("pyrun-init: sigprocmask");
        return 125;
    }
    /* Job-control stops make no sense for PID 1: ignore them here. */
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);

    pid_t child = fork();
    if (child < 0) {
        perror("pyrun-init: fork");
        return 125;
    }
    if (child == 0)
        run_program(argv + 2, &saved);

    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&handled, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("pyrun-init: sigwaitinfo");
            return 125;
        }
        if (sig != SIGCHLD) {
            /* To the program's process group when it leads one (setsid
             * above), so its own children are told too; else to it alone. */
            if (kill(-child, sig) < 0)
                kill(child, sig);
            continue;
        }
        /* One SIGCHLD may stand for many exits: reap until none is left. */
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            if (pid == child) {
                /* Returning from PID 1 makes the kernel SIGKILL everything
                 * else in the namespace; reap what already exited first. */
                while (waitpid(-1, NULL, WNOHANG) > 0)
                    ;
                return exit_status(status);
            }
        }
    }
}
