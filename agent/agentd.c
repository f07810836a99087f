/*
 * agentd.c - spinup-agent lifecycle: configuration, start-up, the one loop,
 * signals and the SIGTERM drain.
 */
#include "agentd_int.h"

#include "../model/banned.h"

/* Signal state: the only file-scope variables besides the log's. */
static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t sig_term, sig_chld, sig_hup;

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

void agentd_config_defaults(struct agentd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = "127.0.0.1:" STRINGIFY(AGENTWIRE_DEFAULT_PORT);
	c->id = "";
	c->data_dir = "/var/lib/spinup-agent";
	c->secret_file = "/etc/spinup/agent.secret";
	c->runtime = "process";
	c->port_lo = 20000;
	c->port_hi = 20999;
	c->capacity = 8;
	c->sync_interval_s = 300;
	c->sync_timeout_s = 600;
	c->drain_timeout_s = 30;
	c->stop_grace_s = 10;
	c->docker_socket = "/var/run/docker.sock";
	c->docker_url = "http://localhost/v1.43";
	c->docker_port = 8080;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static int parse_listen(const char *s, char *addr, size_t addrsz, int *port, struct err *e)
{
	const char *colon = strrchr(s, ':');
	struct in_addr ia;
	char host[INET_ADDRSTRLEN];
	char *end;
	long p;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return err_set(e, SP_EINVAL, "listen address '%s' is not ADDR:PORT", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535 ||
	    inet_pton(AF_INET, host, &ia) != 1)
		return err_set(e, SP_EINVAL, "listen address '%s' is not IPv4ADDR:PORT", s);
	str_copy(addr, addrsz, host);
	*port = (int)p;
	return 0;
}

static int mkdirs(const char *base, struct err *e)
{
	static const char *const subs[] = { "", "/workspaces", "/logs" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", base, subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return err_set(e, SP_EIO, "could not create %s: %s", path, strerror(errno));
	}
	return 0;
}

static int validate(const struct agentd_config *c, struct err *e)
{
	static const char *const job_names[] = { "dir", "bucket", "prefix", "id", "name", NULL };

	if (c->capacity < 1 || c->capacity > AGENTD_CAPACITY_MAX)
		return err_set(e, SP_EINVAL, "capacity must be 1..%d", AGENTD_CAPACITY_MAX);
	if (c->port_lo < 1 || c->port_hi > 65535 || c->port_lo > c->port_hi)
		return err_set(e, SP_EINVAL, "port range %d-%d is not valid", c->port_lo, c->port_hi);
	if (c->sync_interval_s < 0 || c->sync_timeout_s < 1 || c->drain_timeout_s < 0 ||
	    c->stop_grace_s < 0)
		return err_set(e, SP_EINVAL, "intervals and timeouts must be positive");
	if (!c->data_dir || !*c->data_dir || strlen(c->data_dir) > PATH_MAX - 64)
		return err_set(e, SP_EINVAL, "data dir is empty or too long");
	if (c->sync_cmd && cmdtpl_check(c->sync_cmd, job_names, e) < 0)
		return err_prefix(e, "sync command");
	if (c->restore_cmd && cmdtpl_check(c->restore_cmd, job_names, e) < 0)
		return err_prefix(e, "restore command");
	return 0;
}

static int runtime_open(struct agentd *a, struct err *e)
{
	if (!strcmp(a->cfg.runtime, "process")) {
		struct rt_process_opts po;

		if (!a->cfg.workspace_cmd) {
			if (!a->cfg.self_exe)
				return err_set(e, SP_EINVAL, "no workspace command and no path to self");
			snprintf(a->builtin_cmd, sizeof(a->builtin_cmd),
				 "exec '%s' workspace --listen {addr}:{port} --dir {dir}",
				 a->cfg.self_exe);
			po.command = a->builtin_cmd;
		} else {
			po.command = a->cfg.workspace_cmd;
		}
		a->rt = rt_process_new(&po, e);
	} else if (!strcmp(a->cfg.runtime, "docker")) {
		struct rt_docker_opts d;

		memset(&d, 0, sizeof(d));
		d.socket_path = a->cfg.docker_socket && *a->cfg.docker_socket ?
			a->cfg.docker_socket : NULL;
		d.base_url = a->cfg.docker_url;
		d.container_port = a->cfg.docker_port;
		d.mount_point = "/home/coder/project";
		d.timeout_ms = 30000;
		d.self_exe = a->cfg.self_exe;
		a->rt = rt_docker_new(&d, e);
	} else {
		return err_set(e, SP_EINVAL, "unknown runtime '%s' (process or docker)",
			       a->cfg.runtime);
	}
	return a->rt ? 0 : e ? e->code : SP_EINVAL;
}

static int mhd_open(struct agentd *a, int port, struct err *e)
{
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *di;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, a->addr, &sin.sin_addr);
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port,
				  NULL, NULL, agentd_on_request, a,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)AGENTD_CONNECTIONS_MAX,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				  MHD_OPTION_NOTIFY_COMPLETED, agentd_on_completed, a,
				  MHD_OPTION_END);
	if (!a->mhd)
		return err_set(e, SP_EIO, "could not listen on %s:%d (in use?)", a->addr, port);
	di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
	a->port = di ? di->port : port;
	return 0;
}

int agentd_check(const struct agentd_config *c, struct err *e)
{
	struct agentd a;
	char addr[INET_ADDRSTRLEN];
	int port, rc;

	memset(&a, 0, sizeof(a));
	a.cfg = *c;
	rc = validate(c, e);
	if (!rc)
		rc = parse_listen(c->listen, addr, sizeof(addr), &port, e);
	if (!rc)
		rc = agentsig_key_load(&a.key, c->secret_file, e);
	if (!rc)
		rc = runtime_open(&a, e);
	runtime_free(a.rt);
	agentsig_key_wipe(&a.key);
	return rc;
}

struct agentd *agentd_new(const struct agentd_config *c, struct err *e)
{
	struct agentd *a = calloc(1, sizeof(*a));
	int port = 0, rc;

	if (!a) {
		err_set(e, SP_ENOMEM, "out of memory");
		return NULL;
	}
	a->cfg = *c;
	rc = validate(c, e);
	if (!rc)
		rc = parse_listen(c->listen, a->addr, sizeof(a->addr), &port, e);
	if (!rc)
		rc = agentsig_key_load(&a->key, c->secret_file, e);
	if (!rc)
		rc = mkdirs(c->data_dir, e);
	if (!rc && !(a->replay = agentsig_replay_new(AGENTSIG_REPLAY_MAX)))
		rc = err_set(e, SP_ENOMEM, "out of memory");
	if (!rc && !(a->multi = curl_multi_init()))
		rc = err_set(e, SP_ENOMEM, "could not create curl multi handle");
	if (!rc)
		rc = runtime_open(a, e);
	if (!rc) {
		snprintf(a->state_path, sizeof(a->state_path), "%s/" STATE_FILE, c->data_dir);
		rc = agentd_state_load(a, e);
	}
	if (!rc)
		rc = mhd_open(a, port, e);
	if (rc) {
		agentd_free(a);
		return NULL;
	}
	return a;
}

int agentd_port(const struct agentd *a)
{
	return a->port;
}

void agentd_free(struct agentd *a)
{
	if (!a)
		return;
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	while (a->nct)
		agentd_ct_free(a, a->cts[0]);
	if (a->multi)
		curl_multi_cleanup(a->multi);
	runtime_free(a->rt);
	agentsig_replay_free(a->replay);
	agentsig_key_wipe(&a->key);
	free(a);
}

static void on_signal(int sig)
{
	int saved = errno;
	char b = (char)sig;

	if (sig == SIGCHLD)
		sig_chld = 1;
	else if (sig == SIGHUP)
		sig_hup = 1;
	else
		sig_term = 1;
	if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
		/* the pipe is full: the loop wakes up anyway */
	}
	errno = saved;
}

static int signals_install(struct err *e)
{
	struct sigaction sa;

	if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(e, SP_EIO, "could not create signal pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void drain_begin(struct agentd *a)
{
	MHD_socket ls;

	if (a->draining)
		return;
	a->draining = 1;
	a->drain_deadline = agentd_mono_ms() + (int64_t)a->cfg.drain_timeout_s * 1000;
	ls = MHD_quiesce_daemon(a->mhd);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	log_info("draining: no new connections, finishing %d in-flight requests",
		 a->live_reqs);
}

/* SIGHUP: re-read the secret file (rotation); a file that fails the checks keeps the old key. */
static void reload_secret(struct agentd *a)
{
	struct agentsig_key k;
	struct err e = ERR_INIT;

	if (agentsig_key_load(&k, a->cfg.secret_file, &e) < 0) {
		log_warnx("secret not reloaded, keeping the current one: %s", e.msg);
		return;
	}
	a->key = k;
	agentsig_key_wipe(&k);
	log_info("secret reloaded from %s", a->cfg.secret_file);
}

static int jobs_running(const struct agentd *a)
{
	size_t i;

	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->job.pid)
			return 1;
	return 0;
}

/* Drain deadline passed: answer every waiting op so MHD can stop. */
static void drain_abort(struct agentd *a)
{
	struct reqctx *r;
	size_t i;

	for (i = 0; i < a->nct; i++) {
		a->cts[i]->job.op = NULL;   /* a job still running finishes for nobody */
		while ((r = agentd_op_pop(a->cts[i])) != NULL)
			agentd_op_fail(r, 503, "draining", "agent is shutting down");
	}
}

static long loop_timeout(struct agentd *a, int64_t next_tick, int64_t next_probe)
{
	MHD_UNSIGNED_LONG_LONG mt;
	int64_t t = (next_probe < next_tick ? next_probe : next_tick) - agentd_mono_ms();

	if (MHD_get_timeout(a->mhd, &mt) == MHD_YES && (int64_t)mt < t)
		t = (int64_t)mt;
	return t < 0 ? 0 : (long)t;
}

int agentd_run(struct agentd *a, struct err *e)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct curl_waitfd fds[2];
	int64_t next_tick = 0, next_probe = INT64_MAX;
	char buf[64];
	size_t i;
	int rc;

	rc = signals_install(e);
	if (rc)
		return rc;
	if (!di)
		return err_set(e, SP_EINTERNAL, "libmicrohttpd has no epoll descriptor");
	log_info("listening addr=%s port=%d runtime=%s capacity=%d containers=%zu",
		 a->addr, a->port, a->rt->ops->name, a->cfg.capacity, a->nct);
	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->phase == PH_RESTORING)
			agentd_ct_restore(a, a->cts[i]);
	for (;;) {
		fds[0].fd = di->epoll_fd;
		fds[0].events = CURL_WAIT_POLLIN;
		fds[0].revents = 0;
		fds[1].fd = sig_pipe[0];
		fds[1].events = CURL_WAIT_POLLIN;
		fds[1].revents = 0;
		curl_multi_poll(a->multi, fds, 2, (int)loop_timeout(a, next_tick, next_probe), NULL);
		while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
			;
		if (sig_chld) {
			sig_chld = 0;
			agentd_reap(a);
		}
		if (sig_hup) {
			sig_hup = 0;
			reload_secret(a);
		}
		if (sig_term)
			drain_begin(a);
		agentd_probes_collect(a);
		if (agentd_mono_ms() >= next_tick) {
			agentd_supervise(a);
			next_tick = agentd_mono_ms() + TICK_MS;
		}
		next_probe = agentd_probes_start(a, agentd_mono_ms());
		MHD_run(a->mhd);
		if (a->draining && a->live_reqs == 0 && !jobs_running(a))
			break;
		if (a->draining && agentd_mono_ms() >= a->drain_deadline) {
			log_warnx("drain deadline passed with %d requests in flight", a->live_reqs);
			drain_abort(a);
			MHD_run(a->mhd);
			break;
		}
	}
	agentd_state_save(a);
	log_info("stopped; %zu workspaces left running", agentd_active_count(a));
	return 0;
}

