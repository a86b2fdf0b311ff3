/* cmd/ — the one table printer of the CLI's list commands.
 *
 * The format (docs/ARCHITECTURE.md, "The CLI's tables"): a header line of
 * upper-case column names, then one line per row. Every column is as wide as
 * its widest cell or its header, counted in UTF-8 characters; columns are
 * separated by two spaces; text is left-aligned and numbers (columns marked
 * right) right-aligned; the last column is not padded, so no line ends in
 * blanks. A column with a max cuts longer cells to max characters (the
 * package hash prefix); nothing else is cut. A table without rows prints its
 * header alone. */
#ifndef FL_CMD_TABLE_H
#define FL_CMD_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct cli_table_col {
    const char *header;
    int right;  /* 1: right-aligned (numbers) */
    size_t max; /* cells cut to this many characters; 0 = never */
};

struct cli_table;

/* A table of n columns (cols is copied; the headers must outlive the
 * table). Exits 1 when out of memory, as the CLI does. */
struct cli_table *cli_table_new(const struct cli_table_col *cols, size_t n);
/* Start a row; its cells follow, one cli_table_cell each, in column order. */
void cli_table_row(struct cli_table *t);
/* The next cell of the current row, printf-style. A row given fewer cells
 * than columns prints the missing ones empty; more is a programming error
 * (abort). */
void cli_table_cell(struct cli_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print the table to f, each line after `indent` spaces, and free it. */
void cli_table_print(struct cli_table *t, FILE *f, int indent);

#endif
