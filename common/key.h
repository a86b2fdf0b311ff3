/* common/key — the cluster key and the key files that hold secrets.
 *
 * Issue 5, "Cluster key": every link between Flotilla processes is
 * authenticated and encrypted from one 32-byte random key that servers and
 * agents read from a file (`flotilla keygen`, docs/SECURITY.md "Links").
 *
 * File format: the key in standard base64 (with padding, 44 characters),
 * then a newline. Whitespace around it is ignored; anything else is refused.
 * Like ssh with private keys, a key file that its group or others may read
 * (mode & 077) is refused: a key that leaked is no key. */
#ifndef FL_COMMON_KEY_H
#define FL_COMMON_KEY_H

#include <stddef.h>

#define FL_KEY_BYTES 32

/* Environment variable naming the key file when --key is not given. */
#define FL_KEY_ENV "FLOTILLA_KEY_FILE"

/* Read the cluster key from `path`. Returns FL_OK, or:
 *   FL_ENOTFOUND  the file does not exist
 *   FL_EIO        it cannot be opened or read, or is not a regular file
 *   FL_EPROTO     group or others may read it (the message says chmod 600)
 *   FL_EDECODE    it does not hold exactly one base64 key of 32 bytes
 * with the detail (and the path) in errmsg (FL_ERRMSG_SIZE, may be NULL).
 * `key` is written only on success. */
int fl_key_load(const char *path, unsigned char key[FL_KEY_BYTES], char *errmsg);

/* Write a new random key to `path` with mode 0600, through a temporary file
 * renamed into place (a reader never sees half a key). Without `force` an
 * existing file is FL_EEXIST and is left alone. FL_EIO on a write failure.
 * If `key` is not NULL it receives the key written. */
int fl_key_generate(const char *path, int force, unsigned char key[FL_KEY_BYTES], char *errmsg);

/* Encode `len` bytes as base64 + "\n" and write them to `path` (mode 0600,
 * temporary file and rename); the shared writer of secret files (the agent's
 * identity key uses it too). Same errors as fl_key_generate. */
int fl_secret_file_write(const char *path, int force, const unsigned char *bytes, size_t len,
                         char *errmsg);
/* Read a secret file written by fl_secret_file_write holding exactly `len`
 * bytes. Same errors and permission rule as fl_key_load. */
int fl_secret_file_read(const char *path, unsigned char *bytes, size_t len, char *errmsg);

#endif
