/* A file layer for the power-loss test, loaded into synod with LD_PRELOAD.
 *
 * It keeps a shadow copy of the data directory that holds only what a power
 * cut would leave: each time a file under SHADOW_SRC is fsync'ed or
 * fdatasync'ed, its content is copied to the same place under SHADOW_DST.
 * Writes never synced (sled's own flushes end in sync_file_range, which is
 * no durability barrier) never reach the shadow. Renames of shadowed files
 * are repeated there, as a journaling file system makes them durable in
 * order. With SHADOW_SYNC_DELAY_US set, fdatasync waits that long first,
 * as a slow disk would. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* The part of `path` below SHADOW_SRC, or NULL if it lies elsewhere. */
static const char *below_src(const char *path) {
    const char *src = getenv("SHADOW_SRC");
    if (!src || !path) return NULL;
    size_t n = strlen(src);
    if (strncmp(path, src, n) == 0 && (path[n] == '/' || path[n] == 0)) return path + n;
    return NULL;
}

static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    }
}

static void copy_file(const char *from, const char *to) {
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.shadow-tmp", to);
    int in = open(from, O_RDONLY);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0 && out >= 0) {
        static char buf[1 << 16];
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)r) != r) break;
        }
        rename(tmp, to);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
}

static void shadow_fd(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    const char *rel = below_src(path);
    const char *dst_root = getenv("SHADOW_DST");
    if (!rel || !dst_root) return;
    char dst[PATH_MAX];
    snprintf(dst, sizeof dst, "%s%s", dst_root, rel);
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&mu);
    make_parents(dst);
    if (S_ISDIR(st.st_mode)) {
        mkdir(dst, 0755);
    } else {
        copy_file(path, dst);
    }
    pthread_mutex_unlock(&mu);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int r = real(fd);
    if (r == 0) shadow_fd(fd);
    return r;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    /* A slow disk: written data waits unsynced long enough for the kill to
     * find some, which the test then tears. */
    const char *delay = getenv("SHADOW_SYNC_DELAY_US");
    if (delay) usleep((useconds_t)atoi(delay));
    int r = real(fd);
    if (r == 0) shadow_fd(fd);
    return r;
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int r = real(from, to);
    const char *a = below_src(from), *b = below_src(to);
    const char *dst_root = getenv("SHADOW_DST");
    if (r == 0 && a && b && dst_root) {
        char sa[PATH_MAX], sb[PATH_MAX];
        snprintf(sa, sizeof sa, "%s%s", dst_root, a);
        snprintf(sb, sizeof sb, "%s%s", dst_root, b);
        pthread_mutex_lock(&mu);
        make_parents(sb);
        real(sa, sb);
        pthread_mutex_unlock(&mu);
    }
    return r;
}
