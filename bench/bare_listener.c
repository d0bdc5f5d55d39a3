// The floor of any fanotify exec gate on this machine (`cargo xtask bench gate`): a listener
// that marks the filesystem holding / for FAN_OPEN_EXEC_PERM and allows every exec at once,
// waiting in read(2). It judges nothing and reads nothing else; what it costs per exec (its
// CPU, the latency it adds) is what the kernel's event round trip costs.
//
//   bare_listener      prints "ready" once the mark is in place, runs until killed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(void) {
    int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (fd < 0) {
        perror("fanotify_init");
        return 1;
    }
    if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, AT_FDCWD, "/") < 0) {
        perror("fanotify_mark");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static char buf[64 << 10];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("read");
            return 1;
        }
        for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
            if (m->fd < 0) continue;
            struct fanotify_response r = {.fd = m->fd, .response = FAN_ALLOW};
            if (write(fd, &r, sizeof r) != sizeof r) {
                perror("write");
                return 1;
            }
            close(m->fd);
        }
    }
}
