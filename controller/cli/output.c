// SPDX-License-Identifier: Apache-2.0
/* Output shared by the subcommands: -o values and tables with aligned columns. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const format_names[] = {
	[CLI_FORMAT_TABLE] = "table",
	[CLI_FORMAT_JSON] = "json",
	[CLI_FORMAT_YAML] = "yaml",
};

int cli_format_set(struct cli *c, const char *cmd, const char *value, unsigned int allowed)
{
	const char *shown = value;
	char want[64] = "";
	size_t n = 0;

	/* "text" for the commands whose default output is not a table (describe, explain) */
	if (strcmp(value, "text") == 0)
		value = "table";
	for (int f = CLI_FORMAT_TABLE; f <= CLI_FORMAT_YAML; f++) {
		if ((allowed & CLI_FMT(f)) && strcmp(value, format_names[f]) == 0) {
			c->format = (enum cli_format)f;
			c->json = f == CLI_FORMAT_JSON;
			return 0;
		}
	}
	for (int f = CLI_FORMAT_TABLE; f <= CLI_FORMAT_YAML; f++)
		if (allowed & CLI_FMT(f))
			n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s%s", n ? ", " : "",
					      format_names[f],
					      f == CLI_FORMAT_TABLE ? " (or text)" : "");
	fprintf(stderr, "bulkhead%s%s: -o \"%s\": want %s\n", *cmd ? " " : "", cmd, shown, want);
	return 2;
}

void cli_print_text(const char *text)
{
	size_t n = text ? strlen(text) : 0;

	if (!n)
		return;
	fputs(text, stdout);
	if (text[n - 1] != '\n')
		putchar('\n');
}

/* ---- tables ---------------------------------------------------------------------------------- */

#define TABLE_COLS_MAX 16

struct cli_table {
	size_t ncols, nrows, cap;
	const char *const *headers;
	char **cells; /* nrows * ncols */
};

struct cli_table *cli_table_create(size_t ncols, const char *const *headers)
{
	struct cli_table *t;

	if (ncols == 0 || ncols > TABLE_COLS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->headers = headers;
	return t;
}

/* A copy of s fit for a terminal: control characters (escape sequences) become '?'. */
static char *cell_dup(const char *s)
{
	char *d = strdup(s && *s ? s : "-");

	for (char *p = d; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return d;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *d = cell_dup(cells[i]);

		if (!d) {
			for (size_t k = 0; k < i; k++)
				free(t->cells[t->nrows * t->ncols + k]);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = d;
	}
	t->nrows++;
	return 0;
}

/* Columns a UTF-8 string takes, counting code points (continuation bytes take none). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void print_row(FILE *f, const struct cli_table *t, const char *const *row,
		      const size_t *widths)
{
	for (size_t i = 0; i < t->ncols; i++) {
		fputs(row[i], f);
		if (i + 1 == t->ncols)
			break;
		for (size_t k = width(row[i]); k < widths[i] + 3; k++)
			fputc(' ', f);
	}
	fputc('\n', f);
}

void cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t widths[TABLE_COLS_MAX] = {0};

	for (size_t i = 0; i < t->ncols; i++) {
		widths[i] = width(t->headers[i]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = width(t->cells[r * t->ncols + i]);

			if (w > widths[i])
				widths[i] = w;
		}
	}
	print_row(f, t, t->headers, widths);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(f, t, (const char *const *)&t->cells[r * t->ncols], widths);
}

int cli_table_finish(struct cli_table *t, size_t rows, const char *empty)
{
	if (!t) {
		fprintf(stderr, "bulkhead: out of memory\n");
		return 1;
	}
	if (rows)
		cli_table_print(t, stdout);
	else
		fprintf(stderr, "%s\n", empty);
	cli_table_destroy(t);
	return 0;
}

void cli_table_destroy(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
