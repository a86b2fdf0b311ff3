/* The CLI's table printer (cmd/table.c): widths from content, alignment,
 * the cut of a column with a max, UTF-8 widths, empty tables and indents. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cmd/table.h"

/* Print t into a string (freed by the caller). */
static char *render(struct cli_table *t, int indent)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (f == NULL) {
        abort();
    }
    cli_table_print(t, f, indent);
    fclose(f);
    return s;
}

TEST(widths_from_content)
{
    static const struct cli_table_col cols[] = {{"ID", 0, 0}, {"UNITS", 1, 0}, {"NAME", 0, 0}};
    struct cli_table *t = cli_table_new(cols, 3);
    char *s;
    cli_table_row(t);
    cli_table_cell(t, "%s", "t1");
    cli_table_cell(t, "%d", 7);
    cli_table_cell(t, "%s", "short");
    cli_table_row(t);
    cli_table_cell(t, "%s", "t-longer");
    cli_table_cell(t, "%d", 123456);
    cli_table_cell(t, "%s", "x");
    s = render(t, 0);
    /* ID is as wide as t-longer, UNITS as 123456 (numbers on the right),
     * NAME unpadded: no line ends in blanks. */
    CHECK_EQ_STR(s, "ID         UNITS  NAME\n"
                    "t1             7  short\n"
                    "t-longer  123456  x\n");
    free(s);
}

TEST(header_wider_than_cells)
{
    static const struct cli_table_col cols[] = {{"CONNECTED", 0, 0}, {"N", 1, 0}, {"KEY", 0, 0}};
    struct cli_table *t = cli_table_new(cols, 3);
    char *s;
    cli_table_row(t);
    cli_table_cell(t, "yes");
    cli_table_cell(t, "%d", 42);
    cli_table_cell(t, "k");
    s = render(t, 0);
    CHECK_EQ_STR(s, "CONNECTED   N  KEY\n"
                    "yes        42  k\n");
    free(s);
}

TEST(max_cuts_and_utf8_counts_characters)
{
    static const struct cli_table_col cols[] = {{"HASH", 0, 6}, {"NAME", 0, 0}, {"END", 0, 0}};
    struct cli_table *t = cli_table_new(cols, 3);
    char *s;
    cli_table_row(t);
    cli_table_cell(t, "%s", "0123456789abcdef");
    cli_table_cell(t, "%s", "\xc3\xbcn\xc3\xaf"); /* three characters in five bytes */
    cli_table_cell(t, "e");
    cli_table_row(t);
    cli_table_cell(t, "%s", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    cli_table_cell(t, "%s", "ab");
    cli_table_cell(t, "f");
    s = render(t, 0);
    CHECK_EQ_STR(s, "HASH    NAME  END\n"
                    "012345  \xc3\xbcn\xc3\xaf   e\n"
                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9  ab    f\n");
    free(s);
}

TEST(empty_table_missing_cells_and_indent)
{
    static const struct cli_table_col cols[] = {{"A", 0, 0}, {"B", 0, 0}, {"C", 0, 0}};
    struct cli_table *t = cli_table_new(cols, 3);
    char *s = render(t, 0);
    CHECK_EQ_STR(s, "A  B  C\n");
    free(s);
    t = cli_table_new(cols, 3);
    cli_table_row(t);
    cli_table_cell(t, "xyz");
    s = render(t, 2);
    /* Empty trailing cells leave no blanks at the end of the line. */
    CHECK_EQ_STR(s, "  A    B  C\n"
                    "  xyz\n");
    free(s);
}

int main(void)
{
    RUN(widths_from_content);
    RUN(header_wider_than_cells);
    RUN(max_cuts_and_utf8_counts_characters);
    RUN(empty_table_missing_cells_and_indent);
    return check_summary();
}
