// SPDX-License-Identifier: Apache-2.0
/*
 * Runs a libFuzzer target without libFuzzer: every file of the seed corpus, then a fixed number of
 * deterministic mutations of each (byte flips, truncations, splices, inserted tokens). CTest runs
 * this under ASan/UBSan on every build; the real coverage-guided fuzzer is built with
 * -DBH_FUZZ=ON (clang) for longer runs.
 *
 * usage: replay CORPUS_DIR|FILE [MUTATIONS_PER_SEED]
 *
 * Seeds run in name order and each seed's mutations come from a generator seeded by its file
 * name, so an input is the same on every machine and does not move when a seed is added. When a
 * sanitizer or the target's own check stops the run, the input it stopped on is saved as
 * replay-crash-SEED-N in the current directory: `replay FILE 0` or the libFuzzer binary reproduces
 * it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present when a sanitizer is linked in; NULL otherwise. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static const char *const tokens[] = {
	/* the text rule-set format */
	"revision ", "delta ", "+rule ", "-rule ", "endpoint ", "ipcache ", " any ", " tcp/",
	"-", "/", ":", "=", "\n", "#", " 4294967295", " 18446744073709551616", " 65535",
	" fd00:b1::/64", " 198.18.0.0/15", " if=", " id=", " ingress=deny:", "\0", "\xff",
	/* protobuf: varints at their limits, tags, length-delimited fields; zlib stream headers */
	"\x80", "\xff\xff\xff\xff\x0f", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x0a",
	"\x12\x01", "\x2a\x7f", "\x20\x01", "\x20\x02", "\x08\x01", "\x78\x9c", "\x78\x01",
};

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* FNV-1a of the seed's name: the mutations of a seed depend on nothing else. */
static void rng_seed(const char *name)
{
	rng = 0xcbf29ce484222325ull;
	for (; *name; name++)
		rng = (rng ^ (uint8_t)*name) * 0x100000001b3ull;
	rng |= 1; /* xorshift must not start at 0 */
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

/* The input being run, for the death callback. */
static struct {
	const char *seed;
	long n; /* 0: the seed itself, else the mutation's number */
	const uint8_t *data;
	size_t len;
} cur;

/* Saves the input being run, once. Called from a sanitizer's death callback or a SIGABRT handler
 * (a target's own check, or abort_on_error), so only write(2) and friends. */
static void save_input(void)
{
	char path[512], msg[1024];
	const char *base;
	int fd, ok = 0;

	if (!cur.data)
		return; /* between inputs (a leak report at exit), or saved already */
	base = strrchr(cur.seed, '/') ? strrchr(cur.seed, '/') + 1 : cur.seed;
	snprintf(path, sizeof(path), "replay-crash-%s-%ld", base, cur.n);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		ok = write(fd, cur.data, cur.len) == (ssize_t)cur.len;
		ok = close(fd) == 0 && ok;
	}
	cur.data = NULL;
	if (ok)
		snprintf(msg, sizeof(msg),
			 "replay: the input that failed (%s, mutation %ld) is in %s\n", cur.seed,
			 cur.n, path);
	else
		snprintf(msg, sizeof(msg), "replay: could not save the input that failed to %s\n",
			 path);
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0)
		return;
}

static void on_abort(int sig)
{
	save_input(); /* SA_RESETHAND: abort() then ends the process as it would have */
}

static void run(const char *seed, long n, const uint8_t *data, size_t len)
{
	cur.seed = seed;
	cur.n = n;
	cur.data = data;
	cur.len = len;
	LLVMFuzzerTestOneInput(data, len);
	cur.data = NULL;
}

/* Runs one seed file and per_seed mutations of it. Returns the inputs run, -1 if unreadable. */
static long replay_file(const char *path, const char *name, long per_seed, uint8_t *seed,
			uint8_t *work, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t len;
	int more;

	if (!f) {
		perror(path);
		return -1;
	}
	len = fread(seed, 1, cap / 4, f);
	more = fgetc(f) != EOF;
	fclose(f);
	if (more) {
		/* a truncated seed would be silently a different test */
		fprintf(stderr, "replay: %s is over %zu bytes, the most a seed may have\n", path,
			cap / 4);
		return -1;
	}
	rng_seed(name);
	run(path, 0, seed, len);
	for (long i = 1; i <= per_seed; i++) {
		size_t wl = len;

		memcpy(work, seed, len);
		for (int k = 0; k < 1 + (int)(next() % 4); k++)
			wl = mutate(work, wl, cap);
		run(path, i, work, wl);
	}
	return 1 + per_seed;
}

int main(int argc, char **argv)
{
	long per_seed = argc > 2 ? atol(argv[2]) : 2000, runs = 0, r;
	size_t cap = 1 << 16;
	uint8_t *seed = NULL, *work = NULL;
	struct dirent **names = NULL;
	int files = 0, n, status = 1;
	struct sigaction sa = {0};
	struct stat st;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR|FILE [MUTATIONS_PER_SEED]\n", argv[0]);
		return 2;
	}
	/* ASan and UBSan call the death callback; a target's abort() only raises SIGABRT, which the
	 * sanitizers leave alone. */
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(save_input);
	sa.sa_handler = on_abort;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGABRT, &sa, NULL);
	seed = malloc(cap);
	work = malloc(cap);
	if (!seed || !work) {
		perror("malloc");
		goto out;
	}
	if (stat(argv[1], &st) != 0) {
		perror(argv[1]);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		const char *base = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];

		r = replay_file(argv[1], base, per_seed, seed, work, cap);
		if (r >= 0) {
			files = 1;
			runs = r;
			status = 0;
		}
		goto out;
	}
	n = scandir(argv[1], &names, NULL, alphasort);
	if (n < 0) {
		perror(argv[1]);
		goto out;
	}
	status = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];

		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]->d_name);
			r = replay_file(path, names[i]->d_name, per_seed, seed, work, cap);
			if (r < 0) {
				status = 1;
			} else {
				files++;
				runs += r;
			}
		}
		free(names[i]);
	}
	free(names);
	if (!files) {
		fprintf(stderr, "replay: no seed in %s\n", argv[1]);
		status = 1;
	}
out:
	free(seed);
	free(work);
	if (!status)
		printf("%d seeds, %ld inputs, no crash\n", files, runs);
	return status;
}
