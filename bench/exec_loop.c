/* fork+exec+wait of a program N times: the exec path benchmark (`cargo xtask bench exec`).
 * Usage: exec_loop N PATH [ARG...]. Exits non-zero on the first failed fork, exec or child. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PATH [ARG...]\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    extern char **environ;
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            execve(argv[2], &argv[2], environ);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %ld failed\n", i);
            return 1;
        }
    }
    return 0;
}
