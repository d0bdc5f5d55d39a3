/* Per-call cost of SSL_write or SSL_read through the system libssl.
 *
 * Client and server SSL objects talk over an in-memory BIO pair, so no socket or scheduler is
 * involved: what is timed is the library call plus whatever probes are attached to it. Only the
 * SSL_write calls are timed; the ciphertext is drained at the BIO level (not through SSL_read).
 *
 * In `read` mode the client's records are read by the server SSL object and SSL_read is timed.
 * In `h2` mode the client first writes the HTTP/2 client preface (untimed), then each timed
 * write is one DATA frame of SIZE bytes in all: the writes of an HTTP/2 connection.
 *
 * usage: probe_cost CERT KEY SIZE CALLS REPS [write|read|h2] -> one ns/call figure per repetition */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "probe_cost: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) die("usage: probe_cost CERT KEY SIZE CALLS REPS [write|read|h2]");
    int reading = argc == 7 && strcmp(argv[6], "read") == 0;
    int h2 = argc == 7 && strcmp(argv[6], "h2") == 0;
    size_t size = strtoul(argv[3], NULL, 10);
    long calls = strtol(argv[4], NULL, 10), reps = strtol(argv[5], NULL, 10);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx) die("SSL_CTX_new");
    if (SSL_CTX_use_certificate_file(sctx, argv[1], SSL_FILETYPE_PEM) != 1) die("certificate");
    if (SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) die("key");
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    BIO *cb, *sb;
    if (!BIO_new_bio_pair(&cb, 1 << 22, &sb, 1 << 22)) die("BIO pair");
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 100 && !(SSL_is_init_finished(c) && SSL_is_init_finished(s)); i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    if (!SSL_is_init_finished(c)) die("handshake");
    char *buf = malloc(size), *rbuf = malloc(size), sink[1 << 16];
    memset(buf, 'x', size);
    if (h2) {
        static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        if (size < 9) die("h2: SIZE below a frame header");
        if (SSL_write(c, preface, (int)strlen(preface)) != (int)strlen(preface)) die("SSL_write");
        while (BIO_read(sb, sink, sizeof sink) > 0) {
        }
        /* DATA on stream 1: 24-bit length, type 0, flags 0, stream id. */
        size_t n = size - 9;
        unsigned char head[9] = {(unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n, 0, 0, 0, 0, 0, 1};
        memcpy(buf, head, 9);
    }
    for (long r = 0; r < reps; r++) {
        double spent = 0;
        for (long i = 0; i < calls; i++) {
            if (reading) {
                if (SSL_write(c, buf, (int)size) != (int)size) die("SSL_write");
                double t0 = now_ns();
                if (SSL_read(s, rbuf, (int)size) != (int)size) die("SSL_read");
                spent += now_ns() - t0;
                continue;
            }
            double t0 = now_ns();
            if (SSL_write(c, buf, (int)size) != (int)size) die("SSL_write");
            spent += now_ns() - t0;
            while (BIO_read(sb, sink, sizeof sink) > 0) {
            }
        }
        printf("%.1f\n", spent / (double)calls);
        fflush(stdout);
    }
    return 0;
}
