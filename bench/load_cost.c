/* The library-load stop's cost (cargo xtask bench first, issue 17).
 *
 *   load_cost load PATH N   dlopen(RTLD_LAZY)+dlclose of PATH: prints the first load's ns, then
 *                           the median of N more (the file is known to guard by then)
 *   load_cost mmap PATH N   mmap(PROT_READ|PROT_EXEC) of PATH's first page + munmap, N times:
 *                           prints ns per mapping (what every PROT_EXEC file mapping pays)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long load_once(const char *path) {
    long long t = now_ns();
    void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    dlclose(h);
    return now_ns() - t;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: load_cost load|mmap PATH N\n");
        return 2;
    }
    int n = atoi(argv[3]);
    if (n < 1 || n > 10000000) return 2;
    if (strcmp(argv[1], "load") == 0) {
        long long first = load_once(argv[2]);
        long long *t = malloc(sizeof(long long) * n);
        for (int i = 0; i < n; i++) t[i] = load_once(argv[2]);
        qsort(t, n, sizeof(long long), cmp);
        printf("%lld %lld\n", first, t[n / 2]);
        return 0;
    }
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    long long t = now_ns();
    for (int i = 0; i < n; i++) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        munmap(p, 4096);
    }
    printf("%lld\n", (now_ns() - t) / n);
    return 0;
}
