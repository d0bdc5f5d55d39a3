/* Creates N empty files in DIR, then removes them with unlinkat(dirfd, name) as `rm -r` does,
 * timing only the removals: the deletion benchmark (`cargo xtask bench delete`).
 * Usage: unlink_loop N DIR. Prints the nanoseconds per unlink. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s N DIR\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        perror("open DIR");
        return 1;
    }
    char name[32];
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%ld", i);
        int fd = openat(dir, name, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0) {
            perror("openat");
            return 1;
        }
        close(fd);
    }
    double t = now();
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%ld", i);
        if (unlinkat(dir, name, 0) != 0) {
            perror("unlinkat");
            return 1;
        }
    }
    printf("%.0f\n", (now() - t) / n);
    return 0;
}
