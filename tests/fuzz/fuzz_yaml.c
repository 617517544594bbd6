// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the policy file loader (ctl_yaml_load), and the texts the CLI takes (kubectl
 * selectors, label sets, prefixes). Nothing may crash, leak or read out of bounds; a refused text
 * leaves nothing behind and says where it went wrong; every document that loads must come back
 * from its canonical JSON, and from its YAML, with byte-equal JSON. A broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_yaml: %s\n  %s\n  %s\n", what, a ? a : "(NULL)", b ? b : "(NULL)");
	abort();
}

/* text (one document's JSON or YAML) loads into one document whose JSON is json. */
static void reloads_as(const char *form, const char *text, const char *json)
{
	struct ctl_docset s;
	struct bh_error err = {0};
	char *again;

	if (ctl_yaml_load("again", text, strlen(text), &s, &err))
		broken(form, err.msg, text);
	if (s.n != 1)
		broken("not one document", form, text);
	again = ctl_doc_to_json(&s.v[0]);
	if (!again || strcmp(again, json))
		broken(form, json, again);
	free(again);
	ctl_docset_free(&s);
}

static void round_trip(const struct ctl_doc *d)
{
	char *json = ctl_doc_to_json(d), *yaml = ctl_doc_to_yaml(d);

	if (!json || !yaml)
		broken("to_json/to_yaml failed", json, yaml);
	reloads_as("JSON does not load back the same", json, json);
	reloads_as("YAML does not load back the same", yaml, json);
	free(json);
	free(yaml);
}

/* The CLI's texts: what parses formats canonically, and the canonical text parses the same. */
static void cli_texts(const char *text)
{
	struct ctl_selector sel, sel2;
	struct ctl_labels l, l2;
	struct ctl_prefix p, p2;
	char a[64], b[64];

	if (ctl_selector_parse(text, &sel, NULL) == 0) {
		char *t = ctl_selector_format(&sel), *t2 = NULL;

		if (!t || ctl_selector_parse(t, &sel2, NULL))
			broken("selector format does not parse", text, t);
		t2 = ctl_selector_format(&sel2);
		if (!t2 || strcmp(t, t2))
			broken("selector format is not canonical", t, t2);
		free(t);
		free(t2);
		ctl_selector_free(&sel);
		ctl_selector_free(&sel2);
	}
	if (ctl_labels_parse(text, &l, NULL) == 0) {
		char *t = ctl_labels_format(&l), *t2 = NULL;

		if (!t || ctl_labels_parse(t, &l2, NULL))
			broken("labels format does not parse", text, t);
		t2 = ctl_labels_format(&l2);
		if (!t2 || strcmp(t, t2))
			broken("labels format is not canonical", t, t2);
		free(t);
		free(t2);
		ctl_labels_free(&l);
		ctl_labels_free(&l2);
	}
	if (ctl_prefix_parse(text, &p, NULL) == 0) {
		ctl_prefix_format(&p, a, sizeof(a));
		if (ctl_prefix_parse(a, &p2, NULL) || ctl_prefix_cmp(&p, &p2))
			broken("prefix format does not parse the same", text, a);
		if (strcmp(a, ctl_prefix_format(&p2, b, sizeof(b))))
			broken("prefix format is not canonical", a, b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_docset s = {(void *)1, 1}; /* must be emptied, whatever happens */
	struct bh_error err = {0};
	char *text;

	if (ctl_yaml_load("fuzz", (const char *)data, size, &s, &err) == 0) {
		for (size_t i = 0; i < s.n; i++)
			round_trip(&s.v[i]);
		ctl_docset_free(&s);
	} else if (s.v || s.n || strncmp(err.msg, "fuzz:", 5) || !err.code) {
		broken("a refusal left something behind or named no position", err.msg, NULL);
	}
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cli_texts(text);
	free(text);
	return 0;
}
