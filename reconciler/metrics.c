/* metrics.c - /healthz and /metrics over libmicrohttpd (see metrics.h). */
#include "reconciler/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "reconciler/loop.h"
#include "model/banned.h"

struct metrics_srv {
	struct MHD_Daemon *d;
	const struct loop_metrics *m;
	int fd;
};

static int addf(struct strbuf *sb, const char *name, const char *type, const char *help,
		double v)
{
	return strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %.6g\n", name, help, name, type,
			   name, v);
}

static int format_actions(const struct loop_metrics *m, struct strbuf *sb)
{
	int i, rc = strbuf_addstr(sb, "# HELP spinup_actions_total Actions performed, by type"
				  " (type=\"failed\": failed ones)\n"
				  "# TYPE spinup_actions_total counter\n");

	for (i = 0; !rc && i <= ACT_MAX; i++)
		rc = strbuf_addf(sb, "spinup_actions_total{type=\"%s\"} %lu\n",
				 i == ACT_MAX ? "failed" : action_type_name((enum action_type)i),
				 m->actions[i]);
	return rc;
}

static int format_phases(const struct loop_metrics *m, struct strbuf *sb)
{
	int i, rc = strbuf_addstr(sb, "# HELP spinup_workspaces Workspaces by phase after the last pass\n"
				  "# TYPE spinup_workspaces gauge\n");

	for (i = 0; !rc && i < PHASE_MAX; i++)
		rc = strbuf_addf(sb, "spinup_workspaces{phase=\"%s\"} %lu\n",
				 ws_phase_name((enum ws_phase)i), m->phases[i]);
	return rc;
}

static int format_hist(const struct loop_metrics *m, struct strbuf *sb)
{
	static const char *const le[8] = { "10", "50", "100", "250", "500", "1000", "5000", "+Inf" };
	unsigned long cum = 0;
	int i, rc = strbuf_addstr(sb, "# HELP spinup_pass_duration_ms Duration of reconcile passes\n"
				  "# TYPE spinup_pass_duration_ms histogram\n");

	for (i = 0; !rc && i < 8; i++) {
		cum += m->pass_ms_buckets[i];
		rc = strbuf_addf(sb, "spinup_pass_duration_ms_bucket{le=\"%s\"} %lu\n", le[i], cum);
	}
	if (!rc)
		rc = strbuf_addf(sb, "spinup_pass_duration_ms_sum %.3f\nspinup_pass_duration_ms_count %lu\n",
				 m->pass_ms_sum, cum);
	return rc;
}

int metrics_format(const struct loop_metrics *m, struct strbuf *sb)
{
	int rc = addf(sb, "spinup_passes_total", "counter", "Reconcile passes run", (double)m->passes);

	if (!rc)
		rc = addf(sb, "spinup_passes_failed_total", "counter", "Passes that ended in an error",
			  (double)m->passes_failed);
	if (!rc)
		rc = addf(sb, "spinup_fenced_total", "counter", "Passes refused for a stale epoch",
			  (double)m->fenced);
	if (!rc)
		rc = addf(sb, "spinup_notify_wakeups_total", "counter",
			  "Wake-ups by a NOTIFY on spinup_desired", (double)m->notify_wakeups);
	if (!rc)
		rc = addf(sb, "spinup_db_round_trips_total", "counter",
			  "Postgres round trips (a pass: load, settle, journal, record)",
			  (double)m->db_trips);
	if (!rc)
		rc = addf(sb, "spinup_leader", "gauge", "1 while this process holds the lease",
			  m->leader);
	if (!rc)
		rc = addf(sb, "spinup_epoch", "gauge", "Fencing epoch held (0: none)", (double)m->epoch);
	if (!rc)
		rc = addf(sb, "spinup_lease_acquired_total", "counter", "Leadership acquisitions",
			  (double)m->lease_acquired);
	if (!rc)
		rc = addf(sb, "spinup_lease_lost_total", "counter", "Leadership losses",
			  (double)m->lease_lost);
	if (!rc)
		rc = addf(sb, "spinup_last_pass_duration_ms", "gauge", "Duration of the last pass",
			  m->last_pass_ms);
	if (!rc && m->sim)
		rc = addf(sb, "spinup_sim_containers", "gauge",
			  "Sim world: containers of loaded workspaces", (double)m->sim_containers);
	if (!rc && m->sim)
		rc = addf(sb, "spinup_sim_duplicate_workspaces", "gauge",
			  "Sim world: workspaces with more than one container", (double)m->sim_duplicates);
	if (!rc)
		rc = addf(sb, "spinup_drift_findings", "gauge",
			  "Drift findings of the last pass (spinctl drift lists them)",
			  (double)m->drift_findings);
	if (!rc)
		rc = format_phases(m, sb);
	if (!rc)
		rc = format_actions(m, sb);
	if (!rc)
		rc = format_hist(m, sb);
	return rc;
}

int metrics_status(const struct loop_metrics *m, int64_t now_ms, struct strbuf *sb)
{
	int i, rc, any = 0;

	rc = strbuf_addf(sb, "spinupd\nleader:      %s", m->leader ? "yes" : "no");
	if (!rc && m->leader)
		rc = strbuf_addf(sb, " (fencing epoch %lld)", (long long)m->epoch);
	if (!rc && !m->passes)
		rc = strbuf_addstr(sb, "\nlast pass:   none yet");
	else if (!rc)
		rc = strbuf_addf(sb, "\nlast pass:   %s, %.0f ms, %lld s ago, %lu actions planned",
				 m->last_outcome[0] ? m->last_outcome : "-", m->last_pass_ms,
				 (long long)((now_ms - m->last_pass_at) / 1000), m->actions_planned);
	if (!rc)
		rc = strbuf_addf(sb, "\ndatabase:    %s", m->healthy ? "ok" : "unreachable");
	if (!rc)
		rc = strbuf_addf(sb, "\nworkspaces:  %lu", m->workspaces);
	for (i = 0; !rc && i < PHASE_MAX; i++) {
		if (!m->phases[i])
			continue;
		rc = strbuf_addf(sb, "%s%s %lu", any ? ", " : " (", ws_phase_name((enum ws_phase)i),
				 m->phases[i]);
		any = 1;
	}
	if (!rc && any)
		rc = strbuf_addstr(sb, ")");
	if (!rc)
		rc = strbuf_addf(sb, "\ndrift:       %lu findings (spinctl drift)"
				 "\npasses:      %lu (%lu failed, %lu fenced), %lu woken by NOTIFY\n",
				 m->drift_findings, m->passes, m->passes_failed, m->fenced,
				 m->notify_wakeups);
	return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     struct strbuf *body)
{
	size_t len = 0;
	char *buf = strbuf_detach(body, &len);
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (!buf)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *size, void **ctx)
{
	struct metrics_srv *s = cls;
	struct strbuf sb = STRBUF_INIT;

	(void)version;
	(void)data;
	(void)ctx;
	if (*size)
		return MHD_NO;
	if (strcmp(method, "GET")) {
		strbuf_addstr(&sb, "method not allowed\n");
		return reply(c, 405, "text/plain", &sb);
	}
	if (!strcmp(url, "/healthz")) {
		strbuf_addstr(&sb, s->m->healthy ? "ok\n" : "database unreachable\n");
		return reply(c, s->m->healthy ? 200 : 503, "text/plain", &sb);
	}
	if (!strcmp(url, "/metrics")) {
		if (metrics_format(s->m, &sb)) {
			strbuf_release(&sb);
			return MHD_NO;
		}
		return reply(c, 200, "text/plain; version=0.0.4", &sb);
	}
	if (!strcmp(url, "/status") || !strcmp(url, "/")) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (metrics_status(s->m, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &sb)) {
			strbuf_release(&sb);
			return MHD_NO;
		}
		return reply(c, 200, "text/plain; charset=utf-8", &sb);
	}
	strbuf_addstr(&sb, "not found (try /status, /metrics, /healthz)\n");
	return reply(c, 404, "text/plain", &sb);
}

static int parse_addr(const char *addr, struct sockaddr_in *sin, struct err *e)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return err_set(e, SP_EINVAL, "metrics address '%s': expected 127.0.0.1:PORT", addr);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (!strcmp(host, "localhost"))
		str_copy(host, sizeof(host), "127.0.0.1");
	port = strtol(colon + 1, &end, 10);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sin->sin_addr) != 1 ||
	    (ntohl(sin->sin_addr.s_addr) >> 24) != 127)
		return err_set(e, SP_EINVAL, "metrics address '%s': a loopback host:port is required",
			       addr);
	return 0;
}

int metrics_srv_new(const char *addr, const struct loop_metrics *m, struct metrics_srv **out,
		    struct err *e)
{
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *di;
	struct metrics_srv *s;
	int rc = parse_addr(addr, &sin, e);

	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, SP_ENOMEM, "out of memory");
	s->m = m;
	s->d = MHD_start_daemon(MHD_USE_EPOLL, ntohs(sin.sin_port), NULL, NULL, handle, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				MHD_OPTION_CONNECTION_LIMIT, 16u,
				MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_END);
	di = s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!di) {
		metrics_srv_free(s);
		return err_set(e, SP_EUNAVAIL, "could not listen on %s for metrics", addr);
	}
	s->fd = di->epoll_fd;
	*out = s;
	return 0;
}

void metrics_srv_free(struct metrics_srv *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s);
}

int metrics_srv_fd(const struct metrics_srv *s)
{
	return s->fd;
}

int metrics_srv_timeout(const struct metrics_srv *s)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(s->d, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

void metrics_srv_run(struct metrics_srv *s)
{
	MHD_run(s->d);
}
