// Exec latency harness for the exec gate (`cargo xtask bench gate`).
//
//   gate_loop [-s MS] [-c CPU] [-m] N [PROG]
//
// Runs N times: fork, execve PROG (default /bin/true) with this process's environment, waitpid.
// -s MS sleeps MS milliseconds before the first fork (outside the timed part).
// -c CPU pins this process (and so its children) to CPU before the first fork.
// -m copies PROG into a memfd first and execs that (execveat(fd, "", AT_EMPTY_PATH)), argv
//    {"gate_loop", "-x"}: PROG is then meant to be this program, built static, which exits at once
//    with -x. Such an exec opens no file on a filesystem, so fanotify sees nothing of it.
// Prints one line: execs=N wall_ns_per_exec=W cpu_ns_per_exec=C (CPU of this process and its
// children, user+sys). Exits 1 on any failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double tv_ns(struct timeval tv) { return (double)tv.tv_sec * 1e9 + (double)tv.tv_usec * 1e3; }

static double cpu_ns(void) {
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return tv_ns(self.ru_utime) + tv_ns(self.ru_stime) + tv_ns(kids.ru_utime) + tv_ns(kids.ru_stime);
}

static int to_memfd(const char *path) {
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int fd = memfd_create("gate_loop", MFD_CLOEXEC);
    if (fd < 0) return -1;
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(fd, buf, (size_t)n) != n) return -1;
    }
    close(in);
    return n < 0 ? -1 : fd;
}

int main(int argc, char **argv) {
    int cpu = -1, memfd = 0, sleep_ms = 0, opt;
    while ((opt = getopt(argc, argv, "s:c:mx")) != -1) {
        switch (opt) {
        case 's': sleep_ms = atoi(optarg); break;
        case 'c': cpu = atoi(optarg); break;
        case 'm': memfd = 1; break;
        case 'x': return 0;
        default: fprintf(stderr, "usage: gate_loop [-s MS] [-c CPU] [-m] N [PROG]\n"); return 1;
        }
    }
    if (optind >= argc) { fprintf(stderr, "usage: gate_loop [-s MS] [-c CPU] [-m] N [PROG]\n"); return 1; }
    long n = atol(argv[optind]);
    const char *prog = optind + 1 < argc ? argv[optind + 1] : "/bin/true";
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); return 1; }
    }
    int fd = -1;
    char *child_argv[3] = {(char *)prog, NULL, NULL};
    if (memfd) {
        fd = to_memfd(prog);
        if (fd < 0) { perror("memfd"); return 1; }
        child_argv[0] = "gate_loop";
        child_argv[1] = "-x";
    }
    if (sleep_ms > 0) {
        struct timespec d = {sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
    struct timespec t0, t1;
    double c0 = cpu_ns();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            if (memfd) syscall(SYS_execveat, fd, "", child_argv, environ, AT_EMPTY_PATH);
            else execve(prog, child_argv, environ);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) { perror("waitpid"); return 1; }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                fprintf(stderr, "gate_loop: exec %ld of %s killed by signal %d\n", i, prog, WTERMSIG(status));
            else
                fprintf(stderr, "gate_loop: exec %ld of %s ended with status 0x%x\n", i, prog, status);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("execs=%ld wall_ns_per_exec=%.0f cpu_ns_per_exec=%.0f\n", n, wall / (double)n, (cpu_ns() - c0) / (double)n);
    return 0;
}
