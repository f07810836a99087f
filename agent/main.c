/*
 * spinup-agent - runs the workspaces of one instance. See agent/API.md.
 *
 *   spinup-agent [options]                       serve the agent API
 *   spinup-agent workspace --listen A:P --dir D  the built-in workspace stand-in
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agentd.h"
#include "runtime.h"
#include "../drivers/agenthttp.h"
#include "wsstub.h"
#include "../drivers/log.h"
#include "../model/strbuf.h"
#include "../model/banned.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: spinup-agent [options]          (SIGHUP re-reads the secret file)\n"
"       spinup-agent workspace --listen ADDR:PORT --dir DIR\n"
"       spinup-agent call --secret-file PATH [--epoch N] ADDR:PORT METHOD PATH [BODY]\n"
"       spinup-agent docker-pull [--docker-socket P] [--docker-url U] IMAGE\n"
"       spinup-agent kill-workspaces --data-dir DIR   (after the agent stopped)\n"
"\n"
"options:\n"
"  --listen ADDR:PORT     API address (default 127.0.0.1:7070)\n"
"  --id ID                agent id reported by health\n"
"  --secret-file PATH     shared HMAC secret; must not be readable by group/others\n"
"  --data-dir DIR         state file, workspace folders, logs\n"
"  --runtime NAME         process (default) or docker\n"
"  --workspace-cmd CMD    process runtime command; placeholders {port} {dir} {id}\n"
"                         {addr} {name} {image} (default: the built-in workspace)\n"
"  --port-range LO-HI     workspace ports (default 20000-20999)\n"
"  --capacity N           workspaces this agent runs at most (default 8)\n"
"  --sync-cmd CMD         copy {dir} to {bucket}/{prefix} (placeholders {dir}\n"
"                         {bucket} {prefix} {id} {name}); e.g.\n"
"                         'aws s3 sync {dir} s3://{bucket}/{prefix} --delete'\n"
"  --restore-cmd CMD      copy {bucket}/{prefix} into {dir}\n"
"  --sync-interval SEC    periodic sync of running workspaces, 0 = off (default 300)\n"
"  --sync-timeout SEC     kill a sync or restore running longer (default 600)\n"
"  --drain-timeout SEC    on SIGTERM, wait this long for in-flight requests (default 30)\n"
"  --stop-grace SEC       SIGTERM to SIGKILL when stopping a workspace (default 10)\n"
"  --docker-socket PATH   Engine API socket (default /var/run/docker.sock)\n"
"  --docker-url URL       Engine API base URL (default http://localhost/v1.43)\n"
"  --docker-port N        port the workspace image listens on (default 8080)\n"
"  -n, --check            check the configuration, print \"configuration OK\", exit\n"
"  --debug                verbose logs\n"
"  --help                 this text\n");
}

static int int_arg(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int range_arg(const char *s, int *lo, int *hi)
{
	char *end;
	long a, b;

	a = strtol(s, &end, 10);
	if (end == s || *end != '-')
		return -1;
	b = strtol(end + 1, &end, 10);
	if (*end || a < 1 || b > 65535 || a > b)
		return -1;
	*lo = (int)a;
	*hi = (int)b;
	return 0;
}

static int cmd_workspace(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *dir = NULL;
	struct err e = ERR_INIT;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'd': dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen || !dir) {
		usage(stderr);
		return 2;
	}
	if (wsstub_run(listen, dir, &e) < 0) {
		log_warnx("workspace: %s", e.msg);
		return 1;
	}
	return 0;
}

/* Kill the workspaces an agent left running (a local provider terminating an instance). */
static int cmd_kill_workspaces(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	struct err e = ERR_INIT;
	int c, killed = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'd') {
			usage(stderr);
			return 2;
		}
		dir = optarg;
	}
	if (!dir) {
		usage(stderr);
		return 2;
	}
	if (agentd_kill_workspaces(dir, &killed, &e) < 0) {
		log_warnx("kill-workspaces: %s", e.msg);
		return 1;
	}
	printf("killed %d workspace process groups\n", killed);
	return 0;
}

/* Pull an image through the Engine API: the agent runs this as a job. */
static int cmd_docker_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "docker-socket", required_argument, NULL, 's' },
		{ "docker-url", required_argument, NULL, 'u' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct rt_docker_opts o;
	struct err e = ERR_INIT;
	long timeout_ms = 600000;
	char *end;
	int c, rc;

	memset(&o, 0, sizeof(o));
	o.socket_path = "/var/run/docker.sock";
	o.base_url = "http://localhost/v1.43";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': o.socket_path = *optarg ? optarg : NULL; break;
		case 'u': o.base_url = optarg; break;
		case 't':
			timeout_ms = strtol(optarg, &end, 10);
			if (*end || timeout_ms <= 0)
				return 2;
			break;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = rt_docker_pull(&o, argv[optind], timeout_ms, &e);
	if (rc)
		log_warnx("docker-pull: %s", e.msg);
	else
		log_info("docker-pull: pulled %s", argv[optind]);
	curl_global_cleanup();
	return rc ? 1 : 0;
}

/* A signed request to an agent, for operators and scripts: body to stdout. */
static int cmd_call(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "secret-file", required_argument, NULL, 's' },
		{ "epoch", required_argument, NULL, 'e' },
		{ "timestamp", required_argument, NULL, 't' },
		{ "nonce", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct agenthttp_opts ho = { 0 };
	struct agenthttp_raw raw = { 0, NULL };
	struct agent_target t;
	struct strbuf resp = STRBUF_INIT;
	struct err e = ERR_INIT;
	struct agentc *a = NULL;
	long long epoch = 0, ts = 0;
	long status = 0;
	const char *colon;
	char *end;
	int c, port = 0, rc = 2, timeout_s = 0;

	memset(&t, 0, sizeof(t));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': ho.secret_file = optarg; break;
		case 'e': epoch = strtoll(optarg, &end, 10); if (*end) return 2; break;
		case 't': ts = strtoll(optarg, &end, 10); if (*end) return 2; break;
		case 'n': raw.nonce = optarg; break;
		case 'T': if (int_arg(optarg, 1, 86400, &timeout_s) < 0) return 2; break;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind < 3 || argc - optind > 4 || !(colon = strrchr(argv[optind], ':')) ||
	    int_arg(colon + 1, 1, 65535, &port) < 0 ||
	    (size_t)(colon - argv[optind]) >= sizeof(t.address)) {
		usage(stderr);
		return 2;
	}
	memcpy(t.address, argv[optind], (size_t)(colon - argv[optind]));
	t.port = port;
	str_copy(t.instance_id, sizeof(t.instance_id), "cli");
	raw.timestamp = ts;
	ho.call_timeout_ms = timeout_s * 1000L;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	a = agenthttp_new(&ho, &e);
	if (a && agenthttp_request(a, &t, epoch, argv[optind + 1], argv[optind + 2],
				   argc - optind == 4 ? argv[optind + 3] : NULL, &raw, &status,
				   &resp, &e) == 0) {
		printf("%s\n", resp.buf);
		fprintf(stderr, "HTTP %ld\n", status);
		rc = status >= 200 && status < 300 ? 0 : 1;
	} else {
		log_warnx("call: %s", e.msg);
	}
	agentc_free(a);
	strbuf_release(&resp);
	curl_global_cleanup();
	return rc;
}

enum { O_SYNC_INTERVAL = 256, O_SYNC_TIMEOUT, O_DRAIN, O_GRACE, O_DSOCK, O_DURL, O_DPORT,
       O_DEBUG };

static int parse_args(int argc, char **argv, struct agentd_config *cfg, int *check)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "id", required_argument, NULL, 'i' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "runtime", required_argument, NULL, 'r' },
		{ "workspace-cmd", required_argument, NULL, 'w' },
		{ "port-range", required_argument, NULL, 'p' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "sync-cmd", required_argument, NULL, 'S' },
		{ "restore-cmd", required_argument, NULL, 'R' },
		{ "sync-interval", required_argument, NULL, O_SYNC_INTERVAL },
		{ "sync-timeout", required_argument, NULL, O_SYNC_TIMEOUT },
		{ "drain-timeout", required_argument, NULL, O_DRAIN },
		{ "stop-grace", required_argument, NULL, O_GRACE },
		{ "docker-socket", required_argument, NULL, O_DSOCK },
		{ "docker-url", required_argument, NULL, O_DURL },
		{ "docker-port", required_argument, NULL, O_DPORT },
		{ "debug", no_argument, NULL, O_DEBUG },
		{ "help", no_argument, NULL, 'h' },
		{ "check", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "n", opts, NULL)) != -1) {
		switch (c) {
		case 'n': *check = 1; break;
		case 'l': cfg->listen = optarg; break;
		case 'i': cfg->id = optarg; break;
		case 's': cfg->secret_file = optarg; break;
		case 'd': cfg->data_dir = optarg; break;
		case 'r': cfg->runtime = optarg; break;
		case 'w': cfg->workspace_cmd = optarg; break;
		case 'p': bad |= range_arg(optarg, &cfg->port_lo, &cfg->port_hi); break;
		case 'c': bad |= int_arg(optarg, 1, AGENTD_CAPACITY_MAX, &cfg->capacity); break;
		case 'S': cfg->sync_cmd = *optarg ? optarg : NULL; break;
		case 'R': cfg->restore_cmd = *optarg ? optarg : NULL; break;
		case O_SYNC_INTERVAL: bad |= int_arg(optarg, 0, 86400, &cfg->sync_interval_s); break;
		case O_SYNC_TIMEOUT: bad |= int_arg(optarg, 1, 86400, &cfg->sync_timeout_s); break;
		case O_DRAIN: bad |= int_arg(optarg, 0, 3600, &cfg->drain_timeout_s); break;
		case O_GRACE: bad |= int_arg(optarg, 0, 3600, &cfg->stop_grace_s); break;
		case O_DSOCK: cfg->docker_socket = optarg; break;
		case O_DURL: cfg->docker_url = optarg; break;
		case O_DPORT: bad |= int_arg(optarg, 1, 65535, &cfg->docker_port); break;
		case O_DEBUG: log_setlevel(LOG_LVL_DEBUG); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (bad) {
			fprintf(stderr, "spinup-agent: bad value '%s' for an option\n", optarg);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spinup-agent: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct agentd_config cfg;
	struct err e = ERR_INIT;
	struct agentd *a;
	char self[PATH_MAX];
	ssize_t n;
	int rc, check = 0;

	log_init("spinup-agent", LOG_LVL_INFO);
	if (argc > 1 && !strcmp(argv[1], "workspace"))
		return cmd_workspace(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "call"))
		return cmd_call(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "kill-workspaces"))
		return cmd_kill_workspaces(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "docker-pull"))
		return cmd_docker_pull(argc - 1, argv + 1);
	agentd_config_defaults(&cfg);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		cfg.self_exe = self;
	}
	if (parse_args(argc, argv, &cfg, &check) < 0)
		return 2;
	if (check) {
		if (agentd_check(&cfg, &e) < 0) {
			log_warnx("configuration: %s", e.msg);
			return 1;
		}
		printf("configuration OK\n");
		return 0;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("could not initialise libcurl");
	a = agentd_new(&cfg, &e);
	if (!a) {
		log_warnx("could not start: %s", e.msg);
		curl_global_cleanup();
		return 1;
	}
	rc = agentd_run(a, &e);
	if (rc)
		log_warnx("agent stopped: %s", e.msg);
	agentd_free(a);
	curl_global_cleanup();
	return rc ? 1 : 0;
}
