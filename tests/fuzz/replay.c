// SPDX-License-Identifier: Apache-2.0
/*
 * Runs a libFuzzer target without libFuzzer: every file of the seed corpus, then a fixed number of
 * deterministic mutations of each (byte flips, truncations, splices, inserted tokens). CTest runs
 * this under ASan/UBSan on every build; the real coverage-guided fuzzer is built with
 * -DBH_FUZZ=ON (clang) for longer runs.
 *
 * usage: replay CORPUS_DIR [MUTATIONS_PER_SEED]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const tokens[] = {
	"revision ", "delta ", "+rule ", "-rule ", "endpoint ", "ipcache ", " any ", " tcp/",
	"-", "/", ":", "=", "\n", "#", " 4294967295", " 18446744073709551616", " 65535",
	" fd00:b1::/64", " 198.18.0.0/15", " if=", " id=", " ingress=deny:", "\0", "\xff",
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	switch (next() % 5) {
	case 0: /* flip bytes */
		for (int i = 0; len && i < 1 + (int)(next() % 8); i++)
			buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
		return len;
	case 1: /* truncate */
		return len ? (size_t)(next() % len) : 0;
	case 2: { /* insert a token */
		const char *t = tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))];
		size_t tl = strlen(t) ? strlen(t) : 1, at = len ? (size_t)(next() % len) : 0;

		if (len + tl > cap)
			return len;
		memmove(buf + at + tl, buf + at, len - at);
		memcpy(buf + at, t, tl);
		return len + tl;
	}
	case 3: /* duplicate a slice */
		if (len > 1 && len * 2 <= cap) {
			size_t a = (size_t)(next() % len), n = (size_t)(next() % (len - a)) + 1;

			memmove(buf + a + n, buf + a, len - a);
			return len + n;
		}
		return len;
	default: /* random bytes */
		for (size_t i = 0; i < len; i += 1 + (size_t)(next() % 16))
			buf[i] = (uint8_t)next();
		return len;
	}
}

int main(int argc, char **argv)
{
	long per_seed = argc > 2 ? atol(argv[2]) : 2000;
	size_t cap = 1 << 16;
	uint8_t *seed = malloc(cap), *work = malloc(cap);
	struct dirent *de;
	int files = 0;
	long runs = 0;
	DIR *dir;

	if (argc < 2 || !seed || !work) {
		fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS_PER_SEED]\n", argv[0]);
		return 2;
	}
	dir = opendir(argv[1]);
	if (!dir) {
		perror(argv[1]);
		return 1;
	}
	while ((de = readdir(dir))) {
		char path[4096];
		FILE *f;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		len = fread(seed, 1, cap / 4, f);
		fclose(f);
		files++;
		LLVMFuzzerTestOneInput(seed, len);
		runs++;
		for (long i = 0; i < per_seed; i++) {
			size_t wl = len;

			memcpy(work, seed, len);
			for (int k = 0; k < 1 + (int)(next() % 4); k++)
				wl = mutate(work, wl, cap);
			LLVMFuzzerTestOneInput(work, wl);
			runs++;
		}
	}
	closedir(dir);
	free(seed);
	free(work);
	printf("%d seeds, %ld inputs, no crash\n", files, runs);
	return files ? 0 : 1;
}
