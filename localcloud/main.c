/*
 * spinup-localcloud - the local provider: one Auto Scaling group speaking
 * the ASG/EC2 Query API on loopback, whose instances are local processes
 * on their own loopback addresses. See localcloud/lcloud.h.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lcloud.h"
#include "../drivers/log.h"
#include "../model/banned.h"

#define CRED_LINE_MAX 512

static struct lcloud *g_lc; /* for the signal handler only */

static void usage(FILE *f)
{
	fprintf(f,
"usage: spinup-localcloud --credentials-file PATH --group NAME --instance-cmd CMD [options]\n"
"\n"
"  --listen ADDR:PORT      API and admin address (default 127.0.0.1:0, any free port)\n"
"  --port-file PATH        write the bound port there once listening\n"
"  --region NAME           region requests must be signed for (default us-east-1)\n"
"  --credentials-file PATH AWS shared credentials file; the [default] key pair is\n"
"                          the only one accepted (must not be readable by others)\n"
"  --group NAME            the Auto Scaling group\n"
"  --min-size N --max-size N --desired N   group sizes (default 0, 64, 0)\n"
"  --boot-delay-ms N       Pending before the instance runs (default 500)\n"
"  --net N                 instances get addresses 127.N.x.y (default: random 16..239)\n"
"  --instance-cmd CMD      shell command run per instance; {addr} {id} are replaced\n"
"  --stop-cmd CMD          shell command run when an instance terminates ({addr} {id})\n"
"  --fault-throttle PCT    share of API calls answered Throttling\n"
"  --fault-error PCT       share of API calls answered InternalFailure (500)\n"
"  --debug                 verbose logs\n"
"\n"
"admin: GET /_admin/state, POST /_admin/instances/ID/terminate,\n"
"       POST /_admin/faults?throttle=PCT&error=PCT\n");
}

static void on_signal(int sig)
{
	(void)sig;
	if (g_lc)
		lcloud_stop(g_lc);
}

static int int_arg(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* Read the [default] key pair of an AWS shared credentials file. 0 or -1 (message printed). */
static int read_creds(const char *path, char *key, size_t keysz, char *secret, size_t secsz)
{
	char line[CRED_LINE_MAX], k[64], *eq, *v;
	struct stat st;
	int in_default = 0, rc = -1;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "spinup-localcloud: cannot open credentials file %s\n", path);
		return -1;
	}
	if (fstat(fileno(f), &st) || (st.st_mode & 077)) {
		fprintf(stderr, "spinup-localcloud: credentials file %s is readable by others; "
			"chmod 600 it\n", path);
		goto out;
	}
	key[0] = secret[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		trim(line);
		if (line[0] == '[') {
			in_default = !strcmp(line, "[default]");
			continue;
		}
		eq = strchr(line, '=');
		if (!in_default || !eq)
			continue;
		*eq = '\0';
		trim(line);
		if (sscanf(line, " %63s", k) != 1)
			continue;
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (!strcmp(k, "aws_access_key_id"))
			snprintf(key, keysz, "%s", v);
		else if (!strcmp(k, "aws_secret_access_key"))
			snprintf(secret, secsz, "%s", v);
	}
	if (!key[0] || !secret[0])
		fprintf(stderr, "spinup-localcloud: %s has no [default] aws_access_key_id and "
			"aws_secret_access_key\n", path);
	else
		rc = 0;
out:
	memset(line, 0, sizeof(line));
	fclose(f);
	return rc;
}

static int write_port_file(const char *path, int port)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f, "%d\n", port);
	return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "region", required_argument, NULL, 'r' },
		{ "credentials-file", required_argument, NULL, 'c' },
		{ "group", required_argument, NULL, 'g' },
		{ "min-size", required_argument, NULL, 'm' },
		{ "max-size", required_argument, NULL, 'M' },
		{ "desired", required_argument, NULL, 'd' },
		{ "boot-delay-ms", required_argument, NULL, 'b' },
		{ "net", required_argument, NULL, 'n' },
		{ "instance-cmd", required_argument, NULL, 'i' },
		{ "stop-cmd", required_argument, NULL, 's' },
		{ "fault-throttle", required_argument, NULL, 't' },
		{ "fault-error", required_argument, NULL, 'e' },
		{ "debug", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct lcloud_config cfg = { .listen_addr = "127.0.0.1", .region = "us-east-1",
				     .max_size = 64, .boot_delay_ms = 500 };
	static char addr[64], key[256], secret[256];
	const char *creds = NULL, *port_file = NULL;
	struct sigaction sa;
	struct err e = ERR_INIT;
	int c, bad = 0, rc, debug = 0;
	char *colon;

	cfg.net = 16 + (int)((unsigned)getpid() ^ (unsigned)time(NULL)) % 224;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			snprintf(addr, sizeof(addr), "%s", optarg);
			colon = strrchr(addr, ':');
			if (!colon || int_arg(colon + 1, 0, 65535, &cfg.port))
				bad = fprintf(stderr, "spinup-localcloud: --listen wants ADDR:PORT\n");
			else
				*colon = '\0', cfg.listen_addr = addr;
			break;
		case 'P': port_file = optarg; break;
		case 'r': cfg.region = optarg; break;
		case 'c': creds = optarg; break;
		case 'g': cfg.group = optarg; break;
		case 'm': bad |= int_arg(optarg, 0, LCLOUD_MAX_INSTANCES, &cfg.min_size); break;
		case 'M': bad |= int_arg(optarg, 0, LCLOUD_MAX_INSTANCES, &cfg.max_size); break;
		case 'd': bad |= int_arg(optarg, 0, LCLOUD_MAX_INSTANCES, &cfg.desired); break;
		case 'b': bad |= int_arg(optarg, 0, 3600000, &cfg.boot_delay_ms); break;
		case 'n': bad |= int_arg(optarg, 1, 254, &cfg.net); break;
		case 'i': cfg.instance_cmd = optarg; break;
		case 's': cfg.stop_cmd = optarg; break;
		case 't': bad |= int_arg(optarg, 0, 100, &cfg.throttle_pct); break;
		case 'e': bad |= int_arg(optarg, 0, 100, &cfg.error_pct); break;
		case 'D': debug = 1; break;
		case 'h': usage(stdout); return 0;
		default: bad = 1;
		}
	}
	if (bad || optind != argc || !creds || !cfg.group || !cfg.instance_cmd) {
		if (!bad)
			fprintf(stderr, "spinup-localcloud: --credentials-file, --group and "
				"--instance-cmd are required\n");
		usage(stderr);
		return 2;
	}
	log_init("spinup-localcloud", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (read_creds(creds, key, sizeof(key), secret, sizeof(secret)))
		return 1;
	cfg.access_key_id = key;
	cfg.secret_access_key = secret;
	rc = lcloud_new(&cfg, &g_lc, &e);
	memset(secret, 0, sizeof(secret));
	if (rc) {
		fprintf(stderr, "spinup-localcloud: %s\n", e.msg);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (port_file && write_port_file(port_file, lcloud_port(g_lc))) {
		fprintf(stderr, "spinup-localcloud: cannot write port file %s\n", port_file);
		lcloud_free(g_lc);
		return 1;
	}
	rc = lcloud_run(g_lc, &e);
	log_info("local provider stopped");
	lcloud_free(g_lc);
	return rc ? 1 : 0;
}
