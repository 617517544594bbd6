// SPDX-License-Identifier: Apache-2.0
/* bulkhead token create|list|revoke */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "cli.h"

static const char usage[] =
	"usage: bulkhead token create [--ttl DURATION] [--uses N] [--labels k=v,...]\n"
	"                             [--mode enforce|observe]\n"
	"       bulkhead token list [-o table|json]\n"
	"       bulkhead token revoke ID\n"
	"\n"
	"Join tokens let a new node enroll: 'bulkhead-agent enroll --token TOKEN ...'. A token\n"
	"carries a secret (the controller keeps only its hash) and the CA's fingerprint, which the\n"
	"agent pins. create prints the token on stdout, once; what it is on stderr.\n"
	"\n"
	"  --ttl DURATION   how long it is valid: 30m, 1h (default), 2d\n"
	"  --uses N         how many nodes may use it (default 1; 0 for unlimited until expiry)\n"
	"  --labels k=v,... labels given to the nodes that join with it\n"
	"  --mode MODE      enforcement mode given to them: enforce or observe\n";

static int token_create(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ttl", required_argument, NULL, 't'},	  {"uses", required_argument, NULL, 'u'},
		{"labels", required_argument, NULL, 'l'}, {"mode", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},	  {0},
	};
	Bulkhead__TokenCreateRequest r = BULKHEAD__TOKEN_CREATE_REQUEST__INIT;
	Bulkhead__TokenCreateResponse *resp = NULL;
	unsigned long ttl = 3600;
	uint64_t uses = 1;
	char t[64];
	int opt;

	r.labels = "";
	r.mode = "";
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (bh_parse_duration(optarg, &ttl) || ttl == 0 || ttl > 366ul * 86400) {
				fprintf(stderr, "bulkhead token create: --ttl \"%s\": want a "
						"duration such as 30m, 1h, 2d (at most a year)\n",
					optarg);
				return 2;
			}
			break;
		case 'u':
			if (bh_parse_u64(optarg, 1000000, &uses)) {
				fprintf(stderr, "bulkhead token create: --uses \"%s\": want a number "
						"(0 for unlimited)\n",
					optarg);
				return 2;
			}
			break;
		case 'l':
			r.labels = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "enforce") && strcmp(optarg, "observe")) {
				fprintf(stderr, "bulkhead token create: --mode \"%s\": want enforce "
						"or observe\n",
					optarg);
				return 2;
			}
			r.mode = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	r.ttl_s = (uint32_t)ttl;
	r.uses = uses ? (int32_t)uses : -1;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "CreateToken", &r.base,
				      (ProtobufCMessage **)&resp))
		return 1;
	printf("%s\n", resp->token);
	fprintf(stderr, "token %s: %s, expires %s\n", resp->id,
		r.uses < 0 ? "any number of nodes" : r.uses == 1 ? "one node" : "several nodes",
		cli_time(resp->expires, t, sizeof(t)));
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

static int token_list(struct cli *c)
{
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__TokenList *l = NULL;
	time_t now = time(NULL);
	char t[64];

	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "ListTokens", &e.base,
				      (ProtobufCMessage **)&l))
		return 1;
	if (!c->json)
		printf("%-16s  %-19s  %-9s  %-8s  %-6s  %s\n", "ID", "EXPIRES", "USES-LEFT",
		       "STATE", "MODE", "LABELS");
	for (size_t i = 0; i < l->n_tokens; i++) {
		const Bulkhead__Token *k = l->tokens[i];
		const char *state = k->revoked ? "revoked" : k->expires <= now ? "expired"
							 : k->uses_left == 0   ? "used-up"
									       : "valid";

		if (c->json) {
			printf("{\"id\":\"%s\",\"created\":%" PRId64 ",\"expires\":%" PRId64
			       ",\"uses_left\":%d,\"state\":\"%s\",\"mode\":\"%s\",\"labels\":\"%s\"}\n",
			       k->id, k->created, k->expires, k->uses_left, state, k->mode, k->labels);
			continue;
		}
		char uses[16];

		snprintf(uses, sizeof(uses), "%d", k->uses_left);
		printf("%-16s  %-19s  %-9s  %-8s  %-6s  %s\n", k->id,
		       cli_time(k->expires, t, sizeof(t)), k->uses_left < 0 ? "unlimited" : uses,
		       state, k->mode[0] ? k->mode : "-", k->labels[0] ? k->labels : "-");
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return 0;
}

static int token_revoke(struct cli *c, const char *id)
{
	Bulkhead__TokenRef r = BULKHEAD__TOKEN_REF__INIT;
	ProtobufCMessage *resp = NULL;

	r.id = (char *)id;
	if (cli_connect(c) ||
	    cli_call(c, &bulkhead__operator__descriptor, "RevokeToken", &r.base, &resp))
		return 1;
	protobuf_c_message_free_unpacked(resp, NULL);
	printf("token %s revoked\n", id);
	return 0;
}

int cmd_token(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "create"))
		return token_create(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "list") && cli_list_args(c, argc, argv))
		return token_list(c);
	if (!strcmp(argv[1], "revoke") && argc == 3)
		return token_revoke(c, argv[2]);
	fprintf(stderr, "bulkhead token: unknown or incomplete command\n%s", usage);
	return 2;
}
