/*
 * spinup-localcloud - the local provider: Auto Scaling groups speaking the
 * ASG/EC2 Query API on loopback, whose instances are local processes on
 * their own loopback addresses. See localcloud/lcloud.h for the server,
 * localcloud/lcworld.h for the lifecycle and localcloud/lcapi.h for the API.
 */
#include <errno.h>
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

#define PROG "spinup-localcloud"
#define LINE_MAX_BYTES 1024
#define CONF_MAX_BYTES (256 * 1024)

static struct lcloud *g_lc; /* for the signal handler only */

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --group NAME[:MIN:MAX:DESIRED] [--group ...] [options]\n"
"\n"
"A local Auto Scaling / EC2 provider on loopback: the Query API subset SpinUp\n"
"uses, every request SigV4-verified, instances run as local processes.\n"
"\n"
"  --listen ADDR:PORT        loopback address to serve (default 127.0.0.1:0, any free\n"
"                            port; the port is printed and written to --port-file)\n"
"  --port-file PATH          write the bound port there once listening\n"
"  --region NAME             region requests are signed for (default us-east-1)\n"
"  --credentials PATH        AWS shared credentials file; every profile's key pair\n"
"                            is accepted (mode 0600; --credentials-file is the same);\n"
"                            without it AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n"
"  --group NAME[:MIN:MAX:DESIRED]  a group (repeatable); a bare NAME takes\n"
"                            --min-size/--max-size/--desired (default 0, 64, 0)\n"
"  --groups-file PATH        groups, one NAME:MIN:MAX:DESIRED a line, # comments\n"
"  --boot-delay-ms N         Pending -> InService (default 500)\n"
"  --terminate-delay-ms N    Terminating -> Terminated (default 500)\n"
"  --forget-after-ms N       terminated instances stay listed by EC2 (default 60000)\n"
"  --kill-timeout-ms N       SIGTERM -> SIGKILL of an instance's processes (default 3000)\n"
"  --scale-in newest|oldest  which unprotected instances scale-in removes (default newest)\n"
"  --net N                   instances get 127.N.x.y, never 127.N.0.1 (default 0)\n"
"  --agent-port N            the {port} placeholder (default 7070); an address whose\n"
"                            port is taken by another program is skipped\n"
"  --instance-cmd CMD        shell command run per instance when it is InService;\n"
"                            {id} {ip} {addr} {port} {group} are replaced, quoted;\n"
"                            none or '' runs nothing (the API alone)\n"
"  --stop-cmd CMD            shell command run when an instance terminates\n"
"  --instance-log-dir DIR    each instance's output to DIR/ID.log\n"
"  --seed N                  instance ids and request ids (default: time and pid)\n"
"faults (0 = off; change at runtime with POST /_admin/faults?NAME=VALUE):\n"
"  --throttle-every N        every Nth call Throttling / RequestLimitExceeded (400)\n"
"  --error-every N           every Nth call InternalFailure / InternalError (500)\n"
"  --cut-every N             every Nth call's answer cut in half\n"
"  --page-size N             DescribeInstances pages hold at most N instances\n"
"  --visibility-delay-ms N   new instances reach DescribeInstances this late\n"
"  --deny ACTION[,ACTION]    answer AccessDenied / UnauthorizedOperation (or 'all')\n"
"  --debug                   verbose logs\n"
"  --help                    this text\n"
"\n"
"admin (loopback, no signature): GET /_admin/state (JSON),\n"
"  POST /_admin/instances/ID/kill, POST /_admin/instances/ID/terminate,\n"
"  POST /_admin/faults?throttle_every=N&..., POST /_admin/groups/NAME?desired=N\n");
}

static void on_signal(int sig)
{
	(void)sig;
	if (g_lc)
		lcloud_stop(g_lc);
}

static int int_arg(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void trim(char *s)
{
	size_t n = strlen(s), k = 0;

	while (n && strchr(" \t\r\n", s[n - 1]))
		s[--n] = '\0';
	while (s[k] == ' ' || s[k] == '\t')
		k++;
	memmove(s, s + k, n - k + 1);
}

struct opts {
	struct lcloud_config cfg;
	char *strs[2 * LCLOUD_MAX_KEYS + LCWORLD_MAX_GROUPS];  /* owned copies */
	size_t nstrs;
	long min_size, max_size, desired;
	char *bare[LCWORLD_MAX_GROUPS];   /* --group NAME without sizes */
	size_t nbare;
};

static char *keep(struct opts *o, const char *s)
{
	char *d = strdup(s);

	if (d && o->nstrs < sizeof(o->strs) / sizeof(o->strs[0]))
		o->strs[o->nstrs++] = d;
	else {
		free(d);
		d = NULL;
	}
	return d;
}

/* "NAME:MIN:MAX:DESIRED" or "NAME" (sizes later). 0 or -1 with a message. */
static int add_group(struct opts *o, const char *spec, const char *where)
{
	char buf[LINE_MAX_BYTES], *c[4] = { 0 }, *save = NULL, *tok;
	long v[3];
	int n = 0;

	if (o->cfg.ngroups + o->nbare >= LCWORLD_MAX_GROUPS) {
		fprintf(stderr, PROG ": %s: more than %d groups\n", where, LCWORLD_MAX_GROUPS);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ":", &save); tok && n < 4; tok = strtok_r(NULL, ":", &save))
		c[n++] = tok;
	if (n == 1 && !strchr(spec, ':')) {
		o->bare[o->nbare] = keep(o, c[0]);
		return o->bare[o->nbare++] ? 0 : -1;
	}
	if (n != 4 || tok || int_arg(c[1], 0, LCWORLD_MAX_SIZE, &v[0]) ||
	    int_arg(c[2], 0, LCWORLD_MAX_SIZE, &v[1]) || int_arg(c[3], 0, LCWORLD_MAX_SIZE, &v[2])) {
		fprintf(stderr, PROG ": %s: group '%s' is not NAME:MIN:MAX:DESIRED\n", where, spec);
		return -1;
	}
	o->cfg.groups[o->cfg.ngroups].name = keep(o, c[0]);
	o->cfg.groups[o->cfg.ngroups].min = (int)v[0];
	o->cfg.groups[o->cfg.ngroups].max = (int)v[1];
	o->cfg.groups[o->cfg.ngroups].desired = (int)v[2];
	return o->cfg.groups[o->cfg.ngroups++].name ? 0 : -1;
}

static FILE *open_private(const char *path, int secret)
{
	struct stat st;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, PROG ": cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) || st.st_size > CONF_MAX_BYTES) {
		fprintf(stderr, PROG ": %s is larger than %d bytes\n", path, CONF_MAX_BYTES);
		fclose(f);
		return NULL;
	}
	if (secret && (st.st_mode & 077)) {
		fprintf(stderr, PROG ": %s holds secrets and others may read it; chmod 600 it\n",
			path);
		fclose(f);
		return NULL;
	}
	return f;
}

static int read_groups(struct opts *o, const char *path)
{
	char line[LINE_MAX_BYTES], where[300];
	FILE *f = open_private(path, 0);
	int ln = 0, rc = 0;

	if (!f)
		return -1;
	while (!rc && fgets(line, sizeof(line), f)) {
		ln++;
		trim(line);
		if (!line[0] || line[0] == '#')
			continue;
		snprintf(where, sizeof(where), "%s:%d", path, ln);
		rc = add_group(o, line, where);
	}
	fclose(f);
	return rc;
}

/* Every profile's aws_access_key_id / aws_secret_access_key pair of an INI file. */
static int read_creds(struct opts *o, const char *path)
{
	char line[LINE_MAX_BYTES], key[256] = "", secret[256] = "", *eq;
	FILE *f = open_private(path, 1);
	int ln = 0, rc = 0;

	if (!f)
		return -1;
	for (;;) {
		int end = !fgets(line, sizeof(line), f);
		if (!end) {
			ln++;
			trim(line);
		}
		if ((end || line[0] == '[') && (key[0] || secret[0])) {
			if (!key[0] || !secret[0] || o->cfg.nkeys == LCLOUD_MAX_KEYS) {
				fprintf(stderr, PROG ": %s:%d: a profile without both "
					"aws_access_key_id and aws_secret_access_key, or more than "
					"%d\n", path, ln, LCLOUD_MAX_KEYS);
				rc = -1;
				break;
			}
			o->cfg.keys[o->cfg.nkeys].access_key_id = keep(o, key);
			o->cfg.keys[o->cfg.nkeys++].secret_access_key = keep(o, secret);
			key[0] = secret[0] = '\0';
		}
		if (end)
			break;
		if (!line[0] || line[0] == '#' || line[0] == ';' || line[0] == '[' ||
		    !(eq = strchr(line, '=')))
			continue;
		*eq = '\0';
		trim(line);
		trim(eq + 1);
		if (!strcmp(line, "aws_access_key_id"))
			snprintf(key, sizeof(key), "%s", eq + 1);
		else if (!strcmp(line, "aws_secret_access_key"))
			snprintf(secret, sizeof(secret), "%s", eq + 1);
	}
	memset(line, 0, sizeof(line));
	memset(secret, 0, sizeof(secret));
	fclose(f);
	if (!rc && !o->cfg.nkeys) {
		fprintf(stderr, PROG ": %s has no aws_access_key_id / aws_secret_access_key\n", path);
		rc = -1;
	}
	return rc;
}

static int write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) || rename(tmp, path))
		return -1;
	return 0;
}

static int parse_listen(struct opts *o, char *addr, size_t addrsz, const char *arg)
{
	char *colon;
	long port;

	snprintf(addr, addrsz, "%s", arg);
	colon = strrchr(addr, ':');
	if (!colon || int_arg(colon + 1, 0, 65535, &port)) {
		fprintf(stderr, PROG ": --listen wants ADDR:PORT, got '%s'\n", arg);
		return -1;
	}
	*colon = '\0';
	o->cfg.listen_addr = addr;
	o->cfg.port = (int)port;
	return 0;
}

enum {
	O_LISTEN = 256, O_PORTFILE, O_REGION, O_CREDS, O_GROUP, O_GROUPS_FILE, O_MIN, O_MAX,
	O_DESIRED, O_BOOT, O_TERM, O_FORGET, O_KILL, O_SCALEIN, O_NET, O_AGENTPORT, O_ICMD,
	O_SCMD, O_LOGDIR, O_SEED, O_THROTTLE, O_ERROR, O_CUT, O_PAGE, O_VIS, O_DENY, O_DEBUG,
	O_HELP
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "port-file", required_argument, NULL, O_PORTFILE },
	{ "region", required_argument, NULL, O_REGION },
	{ "credentials", required_argument, NULL, O_CREDS },
	{ "credentials-file", required_argument, NULL, O_CREDS },
	{ "group", required_argument, NULL, O_GROUP },
	{ "groups-file", required_argument, NULL, O_GROUPS_FILE },
	{ "min-size", required_argument, NULL, O_MIN },
	{ "max-size", required_argument, NULL, O_MAX },
	{ "desired", required_argument, NULL, O_DESIRED },
	{ "boot-delay-ms", required_argument, NULL, O_BOOT },
	{ "terminate-delay-ms", required_argument, NULL, O_TERM },
	{ "forget-after-ms", required_argument, NULL, O_FORGET },
	{ "kill-timeout-ms", required_argument, NULL, O_KILL },
	{ "scale-in", required_argument, NULL, O_SCALEIN },
	{ "net", required_argument, NULL, O_NET },
	{ "agent-port", required_argument, NULL, O_AGENTPORT },
	{ "instance-cmd", required_argument, NULL, O_ICMD },
	{ "stop-cmd", required_argument, NULL, O_SCMD },
	{ "instance-log-dir", required_argument, NULL, O_LOGDIR },
	{ "seed", required_argument, NULL, O_SEED },
	{ "throttle-every", required_argument, NULL, O_THROTTLE },
	{ "error-every", required_argument, NULL, O_ERROR },
	{ "cut-every", required_argument, NULL, O_CUT },
	{ "page-size", required_argument, NULL, O_PAGE },
	{ "visibility-delay-ms", required_argument, NULL, O_VIS },
	{ "deny", required_argument, NULL, O_DENY },
	{ "debug", no_argument, NULL, O_DEBUG },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static const char *fault_name(int c)
{
	switch (c) {
	case O_THROTTLE: return "throttle_every";
	case O_ERROR: return "error_every";
	case O_CUT: return "cut_every";
	case O_PAGE: return "page_size";
	case O_VIS: return "visibility_ms";
	default: return "deny";
	}
}

/* One option; 0, 1 (--help), -1 (bad, message printed). */
static int one_opt(struct opts *o, int c, const char *arg, char *addr, size_t addrsz,
		   const char **creds, const char **port_file, int *debug)
{
	struct err e = ERR_INIT;
	long v = 0;
	int bad = 0;

	switch (c) {
	case O_LISTEN: return parse_listen(o, addr, addrsz, arg);
	case O_PORTFILE: *port_file = arg; break;
	case O_REGION: o->cfg.region = arg; break;
	case O_CREDS: *creds = arg; break;
	case O_GROUP: return add_group(o, arg, "--group");
	case O_GROUPS_FILE: return read_groups(o, arg);
	case O_MIN: bad = int_arg(arg, 0, LCWORLD_MAX_SIZE, &o->min_size); break;
	case O_MAX: bad = int_arg(arg, 0, LCWORLD_MAX_SIZE, &o->max_size); break;
	case O_DESIRED: bad = int_arg(arg, 0, LCWORLD_MAX_SIZE, &o->desired); break;
	case O_BOOT: bad = int_arg(arg, 0, 3600000, &v); o->cfg.boot_ms = v; break;
	case O_TERM: bad = int_arg(arg, 0, 3600000, &v); o->cfg.terminate_ms = v; break;
	case O_FORGET: bad = int_arg(arg, 0, 86400000, &v); o->cfg.gone_ms = v; break;
	case O_KILL: bad = int_arg(arg, 0, 600000, &v); o->cfg.kill_ms = v; break;
	case O_NET: bad = int_arg(arg, 0, 254, &v); o->cfg.net = (int)v; break;
	case O_AGENTPORT: bad = int_arg(arg, 0, 65535, &v); o->cfg.agent_port = (int)v; break;
	case O_SEED: bad = int_arg(arg, 0, 0x7fffffffL, &v); o->cfg.seed = (uint64_t)v; break;
	case O_SCALEIN:
		bad = strcmp(arg, "newest") && strcmp(arg, "oldest");
		o->cfg.scale_in = !strcmp(arg, "oldest") ? LCWORLD_SCALE_IN_OLDEST :
							   LCWORLD_SCALE_IN_NEWEST;
		break;
	case O_ICMD: o->cfg.instance_cmd = arg; break;
	case O_SCMD: o->cfg.stop_cmd = arg; break;
	case O_LOGDIR: o->cfg.instance_log_dir = arg; break;
	case O_THROTTLE: case O_ERROR: case O_CUT: case O_PAGE: case O_VIS: case O_DENY:
		if (lcloud_faults_set(&o->cfg.faults, fault_name(c), arg, &e)) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			return -1;
		}
		break;
	case O_DEBUG: *debug = 1; break;
	case O_HELP: return 1;
	default: return -1;
	}
	if (bad)
		fprintf(stderr, PROG ": bad value '%s' for an option (see --help)\n", arg);
	return bad ? -1 : 0;
}

static int env_creds(struct opts *o)
{
	const char *k = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY");

	if (!k || !*k || !s || !*s) {
		fprintf(stderr, PROG ": no credentials: give --credentials FILE or set "
			"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n");
		return -1;
	}
	o->cfg.keys[0].access_key_id = k;
	o->cfg.keys[0].secret_access_key = s;
	o->cfg.nkeys = 1;
	return 0;
}

/* Parse argv into o. 0, 1 (--help printed), 2 (usage error). */
static int parse_args(struct opts *o, int argc, char **argv, char *addr, size_t addrsz,
		      const char **port_file, int *debug)
{
	const char *creds = NULL;
	size_t i;
	int c, r;

	o->cfg.listen_addr = "127.0.0.1";
	o->cfg.region = "us-east-1";
	o->cfg.boot_ms = 500;
	o->cfg.terminate_ms = 500;
	o->cfg.gone_ms = 60000;
	o->cfg.kill_ms = LCLOUD_DEFAULT_KILL_MS;
	o->cfg.agent_port = 7070;
	o->cfg.seed = ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
	o->max_size = 64;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		r = one_opt(o, c == 'h' ? O_HELP : c, optarg, addr, addrsz, &creds, port_file, debug);
		if (r == 1) {
			usage(stdout);
			return 1;
		}
		if (r)
			return 2;
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	for (i = 0; i < o->nbare; i++) {
		o->cfg.groups[o->cfg.ngroups].name = o->bare[i];
		o->cfg.groups[o->cfg.ngroups].min = (int)o->min_size;
		o->cfg.groups[o->cfg.ngroups].max = (int)o->max_size;
		o->cfg.groups[o->cfg.ngroups++].desired = (int)o->desired;
	}
	if (!o->cfg.ngroups) {
		fprintf(stderr, PROG ": no group: give --group NAME[:MIN:MAX:DESIRED]\n");
		return 2;
	}
	if (creds ? read_creds(o, creds) : env_creds(o))
		return 2;
	return 0;
}

static void opts_release(struct opts *o)
{
	size_t i;

	for (i = 0; i < o->nstrs; i++) {
		memset(o->strs[i], 0, strlen(o->strs[i]));
		free(o->strs[i]);
	}
}

int main(int argc, char **argv)
{
	static struct opts o;
	static char addr[256];
	const char *port_file = NULL;
	struct sigaction sa;
	struct err e = ERR_INIT;
	int rc, debug = 0;

	rc = parse_args(&o, argc, argv, addr, sizeof(addr), &port_file, &debug);
	if (rc) {
		if (rc == 2)
			fprintf(stderr, "try '" PROG " --help'\n");
		opts_release(&o);
		return rc == 1 ? 0 : 2;
	}
	log_init(PROG, debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = lcloud_new(&o.cfg, &g_lc, &e);
	opts_release(&o);
	if (rc) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		return rc == SP_EINVAL ? 2 : 1;
	}
	printf("%d\n", lcloud_port(g_lc));
	fflush(stdout);
	if (port_file && write_port_file(port_file, lcloud_port(g_lc))) {
		fprintf(stderr, PROG ": cannot write port file %s: %s\n", port_file,
			strerror(errno));
		lcloud_free(g_lc);
		return 1;
	}
	rc = lcloud_run(g_lc, &e);
	log_info("local provider stopped");
	lcloud_free(g_lc);
	g_lc = NULL;
	return rc ? 1 : 0;
}
