/* The CLI's table printer (cmd/table.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/table.h"

struct cli_table {
    struct cli_table_col *cols;
    size_t n_cols;
    char **cells; /* n_rows * n_cols, row-major; NULL for a cell not given */
    size_t n_rows, cap_rows;
    size_t next; /* the next cell of the last row */
};

static void *must(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "flotilla: out of memory\n");
        exit(1);
    }
    return p;
}

/* UTF-8 characters in the first `bytes` bytes of s. */
static size_t chars(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* The bytes of s's first max characters (all of s when max is 0). */
static size_t cut(const char *s, size_t max)
{
    size_t len = strlen(s), n = 0, i;
    if (max == 0) {
        return len;
    }
    for (i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && n++ == max) {
            break;
        }
    }
    return i;
}

struct cli_table *cli_table_new(const struct cli_table_col *cols, size_t n)
{
    struct cli_table *t = must(calloc(1, sizeof *t));
    t->cols = must(calloc(n ? n : 1, sizeof *t->cols));
    memcpy(t->cols, cols, n * sizeof *cols);
    t->n_cols = n;
    return t;
}

void cli_table_row(struct cli_table *t)
{
    if (t->n_rows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 16;
        t->cells = must(realloc(t->cells, t->cap_rows * t->n_cols * sizeof *t->cells));
    }
    memset(t->cells + t->n_rows * t->n_cols, 0, t->n_cols * sizeof *t->cells);
    t->n_rows++;
    t->next = 0;
}

void cli_table_cell(struct cli_table *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    if (t->n_rows == 0 || t->next >= t->n_cols) {
        abort();
    }
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    t->cells[(t->n_rows - 1) * t->n_cols + t->next++] = must(s);
}

static const char *cell(const struct cli_table *t, size_t row, size_t col)
{
    const char *s = row == 0 ? t->cols[col].header : t->cells[(row - 1) * t->n_cols + col];
    return s != NULL ? s : "";
}

void cli_table_print(struct cli_table *t, FILE *f, int indent)
{
    size_t *width = must(calloc(t->n_cols ? t->n_cols : 1, sizeof *width));
    for (size_t r = 0; r <= t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = cell(t, r, c);
            size_t w = chars(s, cut(s, t->cols[c].max));
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (size_t r = 0; r <= t->n_rows; r++) {
        /* Blanks are written only before text, so no line ends in them. */
        size_t blanks = indent > 0 ? (size_t)indent : 0;
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = cell(t, r, c);
            size_t bytes = cut(s, t->cols[c].max), pad = width[c] - chars(s, bytes);
            blanks += t->cols[c].right ? pad : 0;
            if (bytes > 0) {
                fprintf(f, "%*s", (int)blanks, "");
                fwrite(s, 1, bytes, f);
                blanks = 0;
            }
            blanks += (t->cols[c].right ? 0 : pad) + 2;
        }
        fputc('\n', f);
    }
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t->cols);
    free(width);
    free(t);
}
