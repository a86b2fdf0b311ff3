/* pki/files — certificate and key files: writing them safely, loading them,
 * and a certificate's serial for display. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fsdir.h"
#include "pki/pki_int.h"

#define CERT_FILE_MAX (64 * 1024) /* a certificate, or a short chain */
#define KEY_FILE_MAX  (16 * 1024)
#define PATH_CAP      4096

int pki_check_absent(const char *path, int force, char *errmsg)
{
    struct stat st;
    if (!force && lstat(path, &st) == 0) {
        return fl_errf(errmsg, FL_EEXIST, "%s already exists (use --force to replace it)", path);
    }
    return FL_OK;
}

/* fsync the directory holding path, so the rename survives a crash. */
static void sync_parent(const char *path)
{
    char dir[PATH_CAP];
    const char *slash = strrchr(path, '/');
    int fd;
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int pki_write_file(const char *path, const char *pem, size_t len, unsigned mode, int force,
                   char *errmsg)
{
    char tmp[PATH_CAP + 32];
    int fd, rv = FL_OK;
    if (path == NULL || strlen(path) >= PATH_CAP) {
        return fl_errf(errmsg, FL_EINVAL, "path too long");
    }
    rv = pki_check_absent(path, force, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)(mode & 0777));
    if (fd < 0) {
        return fl_errf(errmsg, FL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    }
    /* The umask may have removed bits, never added them; fchmod makes it exact. */
    if (fchmod(fd, (mode_t)(mode & 0777)) != 0 || fl_write_all(fd, pem, len) != 0 ||
        fsync(fd) != 0) {
        rv = fl_errf(errmsg, FL_EIO, "writing %s: %s", tmp, strerror(errno));
    }
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
    if (rv == FL_OK) {
        sync_parent(path);
    }
    return rv;
}

/* Read a whole file of at most max bytes into a fl_malloc'ed buffer. A key
 * file (is_key) must not be a symlink and must be private. */
static int read_file(const char *path, int is_key, size_t max, char **out, size_t *out_len,
                     char *errmsg)
{
    const char *what = is_key ? "key file" : "certificate file";
    struct stat st;
    size_t got = 0;
    char *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC | (is_key ? O_NOFOLLOW : 0));
    if (fd < 0) {
        return fl_errf(errmsg, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s %s: %s", what, path,
                       strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fl_errf(errmsg, FL_EIO, "%s %s: not a regular file", what, path);
    }
    if (is_key && (st.st_mode & 077) != 0) {
        close(fd);
        return fl_errf(errmsg, FL_EPROTO,
                       "key file %s is accessible by others (mode %03o); run chmod 600 %s", path,
                       (unsigned)(st.st_mode & 0777), path);
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return fl_errf(errmsg, FL_EDECODE, "%s %s: too large (%lld bytes, at most %zu)", what, path,
                       (long long)st.st_size, max);
    }
    buf = fl_malloc(max + 1);
    if (buf == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, max + 1);
            fl_free(buf);
            return fl_errf(errmsg, FL_EIO, "%s %s: %s", what, path, strerror(e));
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
        if (got > max) {
            close(fd);
            OPENSSL_cleanse(buf, max + 1);
            fl_free(buf);
            return fl_errf(errmsg, FL_EDECODE, "%s %s: too large (at most %zu bytes)", what, path,
                           max);
        }
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return FL_OK;
}

int pki_load_cert(const char *path, X509 **out, char *errmsg)
{
    char *text = NULL, why[160];
    size_t len = 0;
    BIO *bio;
    X509 *cert;
    int rv = read_file(path, 0, CERT_FILE_MAX, &text, &len, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    ERR_clear_error();
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        fl_free(text);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    fl_free(text);
    if (cert == NULL) {
        return fl_errf(errmsg, FL_EDECODE, "certificate file %s: no PEM certificate (%s)", path,
                       pki_ossl_reason(why, sizeof why));
    }
    ERR_clear_error();
    *out = cert;
    return FL_OK;
}

/* Never prompt for a passphrase: an encrypted key is not one of ours. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int pki_load_key(const char *path, EVP_PKEY **out, char *errmsg)
{
    char *text = NULL, why[160];
    size_t len = 0;
    BIO *bio;
    EVP_PKEY *key;
    int rv = read_file(path, 1, KEY_FILE_MAX, &text, &len, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    ERR_clear_error();
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        OPENSSL_cleanse(text, len);
        fl_free(text);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(text, len);
    fl_free(text);
    if (key == NULL) {
        return fl_errf(errmsg, FL_EDECODE, "key file %s: no unencrypted PEM private key (%s)", path,
                       pki_ossl_reason(why, sizeof why));
    }
    ERR_clear_error();
    *out = key;
    return FL_OK;
}

void pki_serial_hex(X509 *cert, char *out, size_t cap)
{
    const ASN1_INTEGER *serial;
    BIGNUM *bn = NULL;
    char *hex = NULL;
    const char *p;
    size_t i = 0;
    if (cap == 0) {
        return;
    }
    out[0] = '\0';
    serial = cert != NULL ? X509_get0_serialNumber(cert) : NULL;
    if (serial != NULL) {
        bn = ASN1_INTEGER_to_BN(serial, NULL);
    }
    if (bn != NULL) {
        hex = BN_bn2hex(bn);
    }
    if (hex == NULL) {
        snprintf(out, cap, "?");
        BN_free(bn);
        ERR_clear_error();
        return;
    }
    p = hex;
    if (*p == '-') {
        if (i + 1 < cap) {
            out[i++] = '-';
        }
        p++;
    }
    while (p[0] == '0' && p[1] != '\0') {
        p++;
    }
    for (; *p != '\0' && i + 1 < cap; p++) {
        char c = *p;
        out[i++] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[i] = '\0';
    OPENSSL_free(hex);
    BN_free(bn);
}

int pki_write_pair(EVP_PKEY *key, X509 *cert, const char *key_path, const char *cert_path,
                   int force, char *errmsg)
{
    char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    int rv;
    if ((rv = pki_key_pem(key, &key_pem, &key_len, errmsg)) == FL_OK &&
        (rv = pki_cert_pem(cert, &cert_pem, &cert_len, errmsg)) == FL_OK) {
        rv = pki_write_file(key_path, key_pem, key_len, 0600, force, errmsg);
        if (rv == FL_OK) {
            rv = pki_write_file(cert_path, cert_pem, cert_len, 0644, force, errmsg);
            if (rv != FL_OK) {
                unlink(key_path); /* a key without its certificate is of no use */
            }
        }
    }
    if (key_pem != NULL) {
        OPENSSL_cleanse(key_pem, key_len);
    }
    fl_free(key_pem);
    fl_free(cert_pem);
    return rv;
}
