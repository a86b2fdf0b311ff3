/* Key files (common/key.h). */
#include "common/key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/fsdir.h"

/* Base64 of at most 512 bytes, a newline and some slack. */
#define SECRET_MAX 512
#define FILE_MAX   1024

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read at most FILE_MAX bytes of a private regular file. */
static int read_private(const char *path, char *text, size_t *len, char *errmsg)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return fl_errf(errmsg, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "key file %s: %s", path,
                       strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fl_errf(errmsg, FL_EIO, "key file %s: not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return fl_errf(errmsg, FL_EPROTO,
                       "key file %s is accessible by others (mode %03o); "
                       "run chmod 600 %s",
                       path, (unsigned)(st.st_mode & 0777), path);
    }
    n = read(fd, text, FILE_MAX);
    close(fd);
    if (n < 0) {
        return fl_errf(errmsg, FL_EIO, "key file %s: %s", path, strerror(errno));
    }
    if (n >= FILE_MAX) {
        return fl_errf(errmsg, FL_EDECODE, "key file %s: too large to be a key", path);
    }
    text[n] = '\0';
    *len = (size_t)n;
    return FL_OK;
}

int fl_secret_file_read(const char *path, unsigned char *bytes, size_t len, char *errmsg)
{
    char text[FILE_MAX + 1];
    unsigned char bin[SECRET_MAX];
    size_t n = 0, start = 0, binlen = 0;
    int rv = read_private(path, text, &n, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    while (start < n && is_space(text[start])) {
        start++;
    }
    while (n > start && is_space(text[n - 1])) {
        n--;
    }
    if (len > sizeof bin ||
        sodium_base642bin(bin, sizeof bin, text + start, n - start, NULL, &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen != len) {
        sodium_memzero(text, sizeof text);
        return fl_errf(errmsg, FL_EDECODE,
                       "key file %s does not hold one base64 key of %zu bytes "
                       "(make one with flotilla keygen)",
                       path, len);
    }
    memcpy(bytes, bin, len);
    sodium_memzero(bin, sizeof bin);
    sodium_memzero(text, sizeof text);
    return FL_OK;
}

int fl_key_load(const char *path, unsigned char key[FL_KEY_BYTES], char *errmsg)
{
    return fl_secret_file_read(path, key, FL_KEY_BYTES, errmsg);
}

int fl_secret_file_write(const char *path, int force, const unsigned char *bytes, size_t len,
                         char *errmsg)
{
    char text[sodium_base64_ENCODED_LEN(SECRET_MAX, sodium_base64_VARIANT_ORIGINAL) + 1];
    char tmp[4200];
    struct stat st;
    size_t n;
    int fd, rv = FL_OK;
    if (len > SECRET_MAX || strlen(path) > 4000) {
        return fl_errf(errmsg, FL_EINVAL, "secret or path too long");
    }
    if (!force && lstat(path, &st) == 0) {
        return fl_errf(errmsg, FL_EEXIST, "%s already exists (use --force to replace it)", path);
    }
    sodium_bin2base64(text, sizeof text, bytes, len, sodium_base64_VARIANT_ORIGINAL);
    n = strlen(text);
    text[n++] = '\n';
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sodium_memzero(text, sizeof text);
        return fl_errf(errmsg, FL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    }
    /* The umask may have removed bits, never added them; fchmod makes it exact. */
    if (fchmod(fd, 0600) != 0 || fl_write_all(fd, text, n) != 0 || fsync(fd) != 0) {
        rv = fl_errf(errmsg, FL_EIO, "writing %s: %s", tmp, strerror(errno));
    }
    sodium_memzero(text, sizeof text);
    if (close(fd) != 0 && rv == FL_OK) {
        rv = fl_errf(errmsg, FL_EIO, "writing %s: %s", tmp, strerror(errno));
    }
    if (rv == FL_OK && !force && link(tmp, path) != 0) {
        /* link() refuses to replace: a file that appeared meanwhile wins. */
        rv = fl_errf(errmsg, errno == EEXIST ? FL_EEXIST : FL_EIO, "cannot create %s: %s", path,
                     strerror(errno));
    } else if (rv == FL_OK && force && rename(tmp, path) != 0) {
        rv = fl_errf(errmsg, FL_EIO, "cannot create %s: %s", path, strerror(errno));
    }
    unlink(tmp); /* after link() or a failure; a no-op after rename() */
    return rv;
}

int fl_key_generate(const char *path, int force, unsigned char key[FL_KEY_BYTES], char *errmsg)
{
    unsigned char k[FL_KEY_BYTES];
    int rv;
    if (sodium_init() < 0) {
        return fl_errf(errmsg, FL_EIO, "libsodium failed to initialise");
    }
    randombytes_buf(k, sizeof k);
    rv = fl_secret_file_write(path, force, k, sizeof k, errmsg);
    if (rv == FL_OK && key != NULL) {
        memcpy(key, k, sizeof k);
    }
    sodium_memzero(k, sizeof k);
    return rv;
}
