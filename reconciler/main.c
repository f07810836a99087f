/*
 * spinupd - the SpinUp reconcile daemon (see reconciler/loop.h).
 *
 *   spinupd [--config FILE] [--cloud sim|aws] [--agent sim|http]
 *           [--metrics-addr 127.0.0.1:PORT] [--once | --dry-run] [-n] [-d]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "drivers/log.h"
#include "model/strbuf.h"
#include "reconciler/config.h"
#include "reconciler/loop.h"
#include "model/banned.h"

#define SPINUPD_VERSION "0.1.0"

static volatile sig_atomic_t stop_flag, reload_flag;
static int sig_pipe_w = -1;

static void on_signal(int sig)
{
	int saved = errno;
	char c = 0;

	if (sig == SIGHUP)
		reload_flag = 1;
	else
		stop_flag = 1;
	if (sig_pipe_w >= 0 && write(sig_pipe_w, &c, 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
	errno = saved;
}

static int setup_signals(int *rfd)
{
	struct sigaction sa;
	int p[2];

	if (pipe(p) < 0)
		return -1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	sig_pipe_w = p[1];
	*rfd = p[0];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;   /* blocking driver calls resume; poll() still wakes */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: spinupd [options]\n"
	      "  -f, --config FILE        key=value configuration (see reconciler/config.h)\n"
	      "      --cloud sim|aws      cloud driver (default aws)\n"
	      "      --agent sim|http     agent driver (default http)\n"
	      "      --metrics-addr A     serve /healthz and /metrics on 127.0.0.1:PORT\n"
	      "      --once               one pass; exit 0 if converged or progressing\n"
	      "      --dry-run            plan one pass, print the plan, change nothing\n"
	      "  -n                       check the configuration and exit\n"
	      "  -d                       debug logging\n"
	      "  -h, --help               this help\n"
	      "      --version            print the version\n"
	      "Environment: DATABASE_URL, REDIS_URL (when the file does not set them).\n"
	      "Exit (--once, --dry-run): 0 converged or progressing; 1 error, or a pool's\n"
	      "  group could not be observed; 2 usage;\n"
	      "  3 stuck: no progress, and a workspace waits for its user or an operator\n"
	      "  (NeedsUser, NeedsOperator) or a pool is safety-stopped (spinctl why NAME).\n", f);
}

struct opts {
	const char *config;
	const char *cloud, *agent, *metrics;
	enum loop_mode mode;
	int check, debug;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "cloud", required_argument, NULL, 'C' },
		{ "agent", required_argument, NULL, 'A' },
		{ "metrics-addr", required_argument, NULL, 'M' },
		{ "once", no_argument, NULL, 'O' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->mode = LOOP_RUN;
	while ((c = getopt_long(argc, argv, "f:ndh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': o->config = optarg; break;
		case 'C': o->cloud = optarg; break;
		case 'A': o->agent = optarg; break;
		case 'M': o->metrics = optarg; break;
		case 'O': o->mode = LOOP_ONCE; break;
		case 'D': o->mode = LOOP_DRY_RUN; break;
		case 'n': o->check = 1; break;
		case 'd': o->debug = 1; break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("spinupd %s\n", SPINUPD_VERSION); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spinupd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int apply_flags(struct config *c, const struct opts *o, struct err *e)
{
	if (o->cloud && str_copy(c->cloud, sizeof(c->cloud), o->cloud))
		return err_set(e, SP_EINVAL, "--cloud: unknown driver '%s'", o->cloud);
	if (o->agent && str_copy(c->agent, sizeof(c->agent), o->agent))
		return err_set(e, SP_EINVAL, "--agent: unknown driver '%s'", o->agent);
	if (o->metrics && str_copy(c->metrics_addr, sizeof(c->metrics_addr), o->metrics))
		return err_set(e, SP_EINVAL, "--metrics-addr: too long");
	if (o->debug)
		c->debug = 1;
	return config_validate(c, e);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct opts o;
	struct err e = ERR_INIT;
	struct loop *l = NULL;
	int rc, sigfd = -1;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	log_init("spinupd", o.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (config_load(o.config, &cfg, &e) || apply_flags(&cfg, &o, &e)) {
		fprintf(stderr, "spinupd: %s\n", e.msg);
		return 1;
	}
	log_setlevel(cfg.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (o.check) {
		printf("configuration OK\n");
		return 0;
	}
	if (setup_signals(&sigfd) < 0)
		fatalx("could not set up signal handling");
	if (loop_new(&cfg, o.mode, &l, &e)) {
		log_warnx("could not start: %s", e.msg);
		return 1;
	}
	if (o.mode == LOOP_RUN) {
		rc = loop_run(l, o.config, &stop_flag, &reload_flag, sigfd);
	} else {
		rc = loop_once(l, &e);
		if (rc)
			log_warnx("%s", e.msg);
	}
	loop_free(l);
	return rc;
}
