// SPDX-License-Identifier: Apache-2.0
/*
 * JSON for the CLI's -o json: a string escaper (RFC 8259) and a reader of one top-level string
 * field, enough to pick a value out of the controller's canonical JSON without a library.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define DEPTH_MAX 64

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 if it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are not (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void cli_json_strn(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	fputc('"', f);
	while (i < n) {
		unsigned char ch = p[i];

		switch (ch) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (ch < 0x20) {
				fprintf(f, "\\u%04x", ch);
			} else if (ch < 0x80) {
				fputc(ch, f);
			} else if ((k = utf8_len(p + i, n - i)) != 0) {
				fwrite(p + i, 1, k, f);
				i += k;
				continue;
			} else {
				fputs("\\ufffd", f);
			}
		}
		i++;
	}
	fputc('"', f);
}

void cli_json_str(FILE *f, const char *s)
{
	cli_json_strn(f, s ? s : "", s ? strlen(s) : 0);
}

/* ---- reading --------------------------------------------------------------------------------- */

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = s[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (uint32_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (uint32_t)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (uint32_t)(ch - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Reads the JSON string at *sp (at its opening quote) and moves *sp past it. With buf, decodes it
 * into buf (len bytes, NUL-terminated); -ENOSPC when it does not fit (the string is still
 * skipped). Without buf, only skips it. 0 or -EINVAL / -ENOSPC.
 */
static int read_string(const char **sp, char *buf, size_t len)
{
	const char *s = *sp + 1;
	size_t o = 0;
	bool full = false;

	for (;;) {
		char tmp[4];
		size_t n = 1;
		uint32_t cp;

		if (*s == '\0' || (unsigned char)*s < 0x20)
			return -EINVAL;
		if (*s == '"')
			break;
		if (*s != '\\') {
			tmp[0] = *s++;
		} else {
			s++;
			switch (*s) {
			case '"':
			case '\\':
			case '/':
				tmp[0] = *s;
				break;
			case 'b':
				tmp[0] = '\b';
				break;
			case 'f':
				tmp[0] = '\f';
				break;
			case 'n':
				tmp[0] = '\n';
				break;
			case 'r':
				tmp[0] = '\r';
				break;
			case 't':
				tmp[0] = '\t';
				break;
			case 'u':
				if (hex4(s + 1, &cp))
					return -EINVAL;
				s += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					uint32_t lo;

					if (s[1] != '\\' || s[2] != 'u' || hex4(s + 3, &lo) ||
					    lo < 0xdc00 || lo > 0xdfff)
						return -EINVAL;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -EINVAL;
				}
				if (cp < 0x80) {
					tmp[0] = (char)cp;
				} else if (cp < 0x800) {
					tmp[0] = (char)(0xc0 | cp >> 6);
					tmp[1] = (char)(0x80 | (cp & 0x3f));
					n = 2;
				} else if (cp < 0x10000) {
					tmp[0] = (char)(0xe0 | cp >> 12);
					tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					tmp[2] = (char)(0x80 | (cp & 0x3f));
					n = 3;
				} else {
					tmp[0] = (char)(0xf0 | cp >> 18);
					tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
					tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
					tmp[3] = (char)(0x80 | (cp & 0x3f));
					n = 4;
				}
				break;
			default:
				return -EINVAL;
			}
			s++;
		}
		if (buf && !full) {
			if (o + n >= len) {
				full = true;
			} else {
				memcpy(buf + o, tmp, n);
				o += n;
			}
		}
	}
	if (buf && len)
		buf[o] = '\0';
	*sp = s + 1;
	return full ? -ENOSPC : 0;
}

/* Skips one JSON value at *sp (whitespace before it already skipped). 0 or -EINVAL. */
static int skip_value(const char **sp, int depth)
{
	const char *s = *sp;

	if (depth > DEPTH_MAX)
		return -EINVAL;
	if (*s == '"')
		return read_string(sp, NULL, 0);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';
		bool object = *s == '{';

		s = skip_ws(s + 1);
		if (*s == close) {
			*sp = s + 1;
			return 0;
		}
		for (;;) {
			if (object) {
				if (*s != '"' || read_string(&s, NULL, 0))
					return -EINVAL;
				s = skip_ws(s);
				if (*s++ != ':')
					return -EINVAL;
				s = skip_ws(s);
			}
			if (skip_value(&s, depth + 1))
				return -EINVAL;
			s = skip_ws(s);
			if (*s == close)
				break;
			if (*s++ != ',')
				return -EINVAL;
			s = skip_ws(s);
		}
		*sp = s + 1;
		return 0;
	}
	/* a number, true, false or null: the characters that may make one */
	if (!strchr("-0123456789tfn", *s) || *s == '\0')
		return -EINVAL;
	while (*s && strchr("+-.0123456789eEtruefalsn", *s))
		s++;
	*sp = s;
	return 0;
}

int cli_json_get_str(const char *text, const char *key, char *buf, size_t len)
{
	const char *s = skip_ws(text);
	char k[256];

	if (*s++ != '{')
		return -EINVAL;
	s = skip_ws(s);
	if (*s == '}')
		return -ENOENT;
	for (;;) {
		int rc;

		if (*s != '"')
			return -EINVAL;
		rc = read_string(&s, k, sizeof(k));
		if (rc == -EINVAL)
			return rc;
		s = skip_ws(s);
		if (*s++ != ':')
			return -EINVAL;
		s = skip_ws(s);
		if (rc == 0 && strcmp(k, key) == 0)
			return *s == '"' ? read_string(&s, buf, len) : -ENOENT;
		if (skip_value(&s, 1))
			return -EINVAL;
		s = skip_ws(s);
		if (*s == '}')
			return -ENOENT;
		if (*s++ != ',')
			return -EINVAL;
		s = skip_ws(s);
	}
}
