/*
 * lcloud.c - the local provider's HTTP server, processes and faults (see lcloud.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lcloud.h"
#include "lcapi.h"
#include "../drivers/log.h"
#include "../drivers/sigv4.h"
#include "../model/strbuf.h"
#include "../model/banned.h"

#define TICK_MS 50
#define MAX_HELPERS 256          /* stop commands running at once */
#define CONN_TIMEOUT_S 30

struct conn {
	struct strbuf body;
	int too_large;
};

struct lcloud {
	struct lcloud_config cfg;
	char *region, *instance_cmd, *stop_cmd, *log_dir;
	char *keys[LCLOUD_MAX_KEYS][2];
	char **child_env;        /* environment of instance and stop commands */
	struct lcworld *w;
	struct MHD_Daemon *mhd;
	int port;
	uint64_t calls;          /* authenticated API calls */
	uint64_t requests;       /* every API request */
	unsigned long rid_seq;
	pid_t helpers[MAX_HELPERS];
	size_t nhelpers;
	volatile sig_atomic_t stopping;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- faults */

static int parse_count(const char *v, long hi, long *out)
{
	char *end;
	long x;

	if (!v || !*v || strlen(v) > 12)
		return -1;
	x = strtol(v, &end, 10);
	if (*end || x < 0 || x > hi)
		return -1;
	*out = x;
	return 0;
}

int lcloud_faults_set(struct lcloud_faults *f, const char *name, const char *value,
		      struct err *e)
{
	long v = 0;

	if (!strcmp(name, "deny")) {
		if (strlen(value) >= sizeof(f->deny))
			return err_set(e, SP_EINVAL, "fault deny: list longer than %d bytes",
				       LCLOUD_DENY_MAX - 1);
		snprintf(f->deny, sizeof(f->deny), "%s", value);
		return 0;
	}
	if (parse_count(value, !strcmp(name, "visibility_ms") ? 3600000L : 1000000L, &v))
		return err_set(e, SP_EINVAL, "fault %s: '%.32s' is not a count in range", name,
			       value);
	if (!strcmp(name, "throttle_every"))
		f->throttle_every = (int)v;
	else if (!strcmp(name, "error_every"))
		f->error_every = (int)v;
	else if (!strcmp(name, "cut_every"))
		f->cut_every = (int)v;
	else if (!strcmp(name, "page_size"))
		f->page_size = (int)v;
	else if (!strcmp(name, "visibility_ms"))
		f->visibility_ms = v;
	else
		return err_set(e, SP_EINVAL, "unknown fault '%.32s'", name);
	return 0;
}

static int denied(const struct lcloud *lc, const char *action)
{
	const char *p = lc->cfg.faults.deny;
	size_t n = strlen(action);

	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if ((len == 3 && !strncmp(p, "all", 3)) || (len == n && !strncmp(p, action, n)))
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- processes */

/* Append tpl with {id} {ip} {addr} {port} {group} replaced, single-quoted. */
static int expand(struct strbuf *out, const char *tpl, const struct lcloud *lc,
		  const struct lcworld_inst *in)
{
	const char *gname = lcworld_group(lc->w, (size_t)in->group)->name;
	char port[16];
	const char *p = tpl;
	int rc = 0;

	snprintf(port, sizeof(port), "%d", lc->cfg.agent_port);
	while (*p && !rc) {
		const char *val = NULL, *q;
		size_t skip = 0;
		if (!strncmp(p, "{id}", 4))
			val = in->id, skip = 4;
		else if (!strncmp(p, "{ip}", 4))
			val = in->ip, skip = 4;
		else if (!strncmp(p, "{addr}", 6))
			val = in->ip, skip = 6;
		else if (!strncmp(p, "{port}", 6))
			val = port, skip = 6;
		else if (!strncmp(p, "{group}", 7))
			val = gname, skip = 7;
		if (!val) {
			rc = strbuf_addch(out, *p++);
			continue;
		}
		rc = strbuf_addch(out, '\'');
		for (q = val; *q && !rc; q++)
			rc = *q == '\'' ? strbuf_addstr(out, "'\\''") : strbuf_addch(out, *q);
		rc = rc ? rc : strbuf_addch(out, '\'');
		p += skip;
	}
	return rc;
}

/* Variables that carry AWS credentials: never in a command's environment. */
static const char *const secret_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
};

/* Whether the NAME=VALUE entry names a credential variable or holds one of our secrets. */
static int env_is_secret(const struct lcloud *lc, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t n = eq ? (size_t)(eq - entry) : strlen(entry), i;

	for (i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++)
		if (strlen(secret_vars[i]) == n && !strncmp(entry, secret_vars[i], n))
			return 1;
	for (i = 0; eq && i < LCLOUD_MAX_KEYS && lc->keys[i][1]; i++)
		if (strstr(eq + 1, lc->keys[i][1]))
			return 1;
	return 0;
}

/*
 * The environment instance and stop commands run with: the provider's own,
 * minus every credential it holds (taken from the environment, or a copy of
 * a secret from the credentials file under another name). An instance
 * stands for a VM: it has no business with the provider's API secret.
 */
static int child_env_build(struct lcloud *lc, struct err *e)
{
	size_t n = 0, k = 0, i;

	while (environ[n])
		n++;
	lc->child_env = calloc(n + 1, sizeof(*lc->child_env));
	if (!lc->child_env)
		return err_set(e, SP_ENOMEM, "out of memory copying the environment");
	for (i = 0; i < n; i++) {
		if (env_is_secret(lc, environ[i]))
			continue;
		lc->child_env[k] = strdup(environ[i]);
		if (!lc->child_env[k++])
			return err_set(e, SP_ENOMEM, "out of memory copying the environment");
	}
	return 0;
}

static void child_env_free(char **env)
{
	size_t i;

	for (i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* Fork `sh -c cmd` in a new session with env; output to log (or inherited). pid or -1. */
static pid_t spawn(const char *cmd, const char *log, char *const *env)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	{
		struct sigaction sa;
		sigset_t none;
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, 0);
		if (log && (fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* the originals close at exec; 0..2 stay open (even when open() gave 0) */
		for (fd = 0; fd < 3; fd++)
			fcntl(fd, F_SETFD, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGCHLD, &sa, NULL);
		sigaction(SIGPIPE, &sa, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		{
			char *const argv[] = { "sh", "-c", (char *)cmd, NULL };

			execve("/bin/sh", argv, env);
		}
		_exit(127);
	}
}

static void hook_start(void *ctx, struct lcworld_inst *in)
{
	struct lcloud *lc = ctx;
	struct strbuf cmd = STRBUF_INIT, log = STRBUF_INIT;
	pid_t pid;

	if (!lc->instance_cmd)
		return;
	strbuf_init(&cmd, LCLOUD_CMD_MAX);
	if (lc->log_dir && strbuf_addf(&log, "%s/%s.log", lc->log_dir, in->id))
		goto out;
	if (expand(&cmd, lc->instance_cmd, lc, in)) {
		log_warnx("could not start instance %s: command longer than %d bytes", in->id,
			  LCLOUD_CMD_MAX);
		goto out;
	}
	pid = spawn(cmd.buf, lc->log_dir ? log.buf : NULL, lc->child_env);
	if (pid < 0) {
		log_warn("could not start instance %s: fork", in->id);
		goto out;
	}
	in->pid = (int)pid;
	in->proc_running = 1;
	log_info("instance %s running ip=%s pid=%d", in->id, in->ip, (int)pid);
out:
	strbuf_release(&cmd);
	strbuf_release(&log);
}

static void hook_stop(void *ctx, struct lcworld_inst *in)
{
	struct lcloud *lc = ctx;
	struct strbuf cmd = STRBUF_INIT;
	pid_t pid;

	log_info("instance %s terminating ip=%s", in->id, in->ip);
	if (in->pid > 0 && (in->proc_running || kill(-in->pid, 0) == 0)) {
		kill(-in->pid, SIGTERM);
		in->kill_ms = now_ms() + lc->cfg.kill_ms;
	}
	if (!lc->stop_cmd)
		return;
	if (lc->nhelpers == MAX_HELPERS) {
		log_warnx("instance %s: stop command not run, %d still running", in->id,
			  MAX_HELPERS);
	} else if (expand(&cmd, lc->stop_cmd, lc, in)) {
		log_warnx("instance %s: stop command too long", in->id);
	} else if ((pid = spawn(cmd.buf, NULL, lc->child_env)) < 0) {
		log_warn("instance %s: could not run the stop command", in->id);
	} else {
		lc->helpers[lc->nhelpers++] = pid;
	}
	strbuf_release(&cmd);
}

/* 1 when nothing listens on ip:agent_port (another program's agent, say). */
static int hook_addr_ok(void *ctx, const char *ip)
{
	struct lcloud *lc = ctx;
	struct sockaddr_in sa;
	int fd, one = 1, ok;

	if (!lc->instance_cmd || lc->cfg.agent_port <= 0)
		return 1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)lc->cfg.agent_port);
	ok = inet_pton(AF_INET, ip, &sa.sin_addr) == 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = ok && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	if (!ok)
		log_info("address %s:%d is in use, skipped", ip, lc->cfg.agent_port);
	return ok;
}

static void reap(struct lcloud *lc)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < lc->nhelpers; i++)
			if (lc->helpers[i] == pid) {
				lc->helpers[i] = lc->helpers[--lc->nhelpers];
				break;
			}
		for (i = 0; i < lcworld_ninst(lc->w); i++) {
			struct lcworld_inst *in = lcworld_inst(lc->w, i);
			if (in->pid != pid || !in->proc_running)
				continue;
			in->proc_running = 0;
			if (in->state == LCWORLD_IN_SERVICE)
				log_info("instance %s: its command exited (status %d), the instance "
					 "keeps running", in->id,
					 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			break;
		}
	}
}

/* SIGKILL the groups whose grace ran out. */
static void kill_overdue(struct lcloud *lc, int64_t now, int all)
{
	size_t i;

	for (i = 0; i < lcworld_ninst(lc->w); i++) {
		struct lcworld_inst *in = lcworld_inst(lc->w, i);
		if (in->pid > 0 && in->kill_ms && (all || now >= in->kill_ms)) {
			kill(-in->pid, SIGKILL);
			in->kill_ms = 0;
		}
	}
}

/* ---------------------------------------------------------------- HTTP helpers */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
			     const char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return reply(c, status, "text/plain", text, strlen(text));
}

static void request_id(struct lcloud *lc, char out[40])
{
	unsigned long k = ++lc->rid_seq;

	snprintf(out, 40, "%08" PRIx64 "-%04lx-4000-8000-%012lx", lc->cfg.seed & 0xffffffffu,
		 (k >> 48) & 0xffff, k & 0xffffffffffffUL);
}

struct hdrs {
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	size_t n;
	int overflow;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct hdrs *h = cls;

	(void)kind;
	if (h->n == SIGV4_MAX_HEADERS) {
		h->overflow = 1;
		return MHD_NO;
	}
	h->h[h->n].name = k;
	h->h[h->n].value = v ? v : "";
	h->n++;
	return MHD_YES;
}

static const char *hdr(const struct hdrs *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (!strcasecmp(h->h[i].name, name))
			return h->h[i].value;
	return NULL;
}

/* The service of the credential scope ("Credential=AK/DATE/REGION/SERVICE/aws4_request"). */
static int scope_service(const char *authz)
{
	const char *p = authz ? strstr(authz, "Credential=") : NULL;
	int slash = 0;

	if (!p)
		return -1;
	for (p += 11; *p && *p != ',' && *p != ' '; p++)
		if (*p == '/' && ++slash == 3) {
			if (!strncmp(p + 1, "autoscaling/", 12))
				return LCAPI_ASG;
			if (!strncmp(p + 1, "ec2/", 4))
				return LCAPI_EC2;
			return -1;
		}
	return -1;
}

static enum lcapi_service pick_service(const struct hdrs *h, const char *action)
{
	const char *host = hdr(h, "host");
	int s = scope_service(hdr(h, "authorization"));

	if (s >= 0)
		return (enum lcapi_service)s;
	if (host && !strncmp(host, "ec2.", 4))
		return LCAPI_EC2;
	if (host && !strncmp(host, "autoscaling.", 12))
		return LCAPI_ASG;
	return lcapi_action_service(action) == LCAPI_EC2 ? LCAPI_EC2 : LCAPI_ASG;
}

static const char *lookup_secret(void *ctx, const char *key)
{
	struct lcloud *lc = ctx;
	size_t i;

	for (i = 0; i < lc->cfg.nkeys; i++)
		if (!strcmp(key, lc->keys[i][0]))
			return lc->keys[i][1];
	return NULL;
}

/* Map sigv4_verify's first word to the AWS answer of svc. */
static int auth_error(enum lcapi_service svc, const struct err *e, const char *rid,
		      struct lcapi_resp *r)
{
	char code[64] = "SignatureDoesNotMatch";

	sscanf(e->msg, "%63s", code);
	if (!strcmp(code, "InvalidClientTokenId"))
		return svc == LCAPI_EC2 ?
			lcapi_error(svc, 401, "AuthFailure", "AWS was not able to validate the "
				    "provided access credentials", rid, r) :
			lcapi_error(svc, 403, code, "The security token included in the request "
				    "is invalid.", rid, r);
	if (!strcmp(code, "IncompleteSignature"))
		return lcapi_error(svc, 400, code, e->msg + strlen(code) + (e->msg[0] ? 1 : 0),
				   rid, r);
	if (!strcmp(code, "RequestExpired"))
		return lcapi_error(svc, 400, code, "Request has expired.", rid, r);
	return lcapi_error(svc, 403, "SignatureDoesNotMatch", "The request signature we "
			   "calculated does not match the signature you provided. Check your "
			   "AWS Secret Access Key and signing method. Consult the service "
			   "documentation for details.", rid, r);
}

/* Faults and the API proper, for an authenticated request. */
static int serve(struct lcloud *lc, enum lcapi_service svc, const struct lcapi_param *p,
		 size_t n, const char *action, const char *rid, struct lcapi_resp *r, int *cut)
{
	const struct lcloud_faults *f = &lc->cfg.faults;
	struct lcapi_opts o = { .page_cap = f->page_size };
	uint64_t k = ++lc->calls;
	char msg[200];

	if (action && denied(lc, action)) {
		if (svc == LCAPI_EC2)
			return lcapi_error(svc, 403, "UnauthorizedOperation", "You are not "
					   "authorized to perform this operation.", rid, r);
		snprintf(msg, sizeof(msg), "User: arn:aws:iam::000000000000:user/local is not "
			 "authorized to perform: autoscaling:%.64s", action);
		return lcapi_error(svc, 403, "AccessDenied", msg, rid, r);
	}
	if (f->throttle_every && k % (uint64_t)f->throttle_every == 0)
		return svc == LCAPI_EC2 ?
			lcapi_error(svc, 400, "RequestLimitExceeded", "Request limit exceeded.",
				    rid, r) :
			lcapi_error(svc, 400, "Throttling", "Rate exceeded", rid, r);
	if (f->error_every && k % (uint64_t)f->error_every == 0)
		return svc == LCAPI_EC2 ?
			lcapi_error(svc, 500, "InternalError", "An internal error has occurred.",
				    rid, r) :
			lcapi_error(svc, 500, "InternalFailure", "The request processing has "
				    "failed because of an unknown error, exception or failure.",
				    rid, r);
	*cut = f->cut_every && k % (uint64_t)f->cut_every == 0;
	return lcapi_handle(lc->w, svc, p, n, &o, now_ms(), rid, r);
}

static enum MHD_Result api(struct lcloud *lc, struct MHD_Connection *c, struct conn *cs)
{
	struct lcapi_param *p = NULL;
	struct hdrs h = { .n = 0 };
	struct lcapi_resp r;
	struct sigv4_req req;
	struct err e = ERR_INIT;
	char *body = NULL, rid[40], act[64] = "-", line[200];
	const char *action = NULL;
	enum lcapi_service svc;
	size_t n = 0;
	int cut = 0, rc = 0;
	enum MHD_Result mr = MHD_NO;

	lc->requests++;
	lcapi_resp_init(&r);
	request_id(lc, rid);
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &h);
	p = calloc(LCAPI_MAX_PARAMS, sizeof(*p));
	body = strndup(cs->body.buf, cs->body.len);
	if (!p || !body)
		goto out;
	if (!cs->too_large && !lcapi_parse_form(body, p, LCAPI_MAX_PARAMS, &n))
		action = lcapi_param_get(p, n, "Action");
	if (action)
		snprintf(act, sizeof(act), "%.63s", action);
	svc = pick_service(&h, action);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = "/";
	req.query = "";
	req.headers = h.h;
	req.nheaders = h.n;
	req.payload = cs->body.buf;
	req.payload_len = cs->body.len;
	if (cs->too_large)
		rc = lcapi_error(svc, 413, "RequestEntityTooLarge", "the request body is over "
				 "the provider's limit", rid, &r);
	else if (!hdr(&h, "authorization"))
		rc = lcapi_error(svc, 403, "MissingAuthenticationToken", "Request is missing "
				 "Authentication Token", rid, &r);
	else if (h.overflow)
		rc = lcapi_error(svc, 400, "IncompleteSignature", "too many headers", rid, &r);
	else if (sigv4_verify(&req, lc->region, svc == LCAPI_EC2 ? "ec2" : "autoscaling",
			      lookup_secret, lc, now_ms() / 1000, SIGV4_DEFAULT_SKEW_S, &e))
		rc = auth_error(svc, &e, rid, &r);
	else if (!action && n == LCAPI_MAX_PARAMS)
		rc = lcapi_error(svc, 400, "ValidationError", "too many parameters", rid, &r);
	else
		rc = serve(lc, svc, p, n, action, rid, &r, &cut);
	if (rc)
		goto out;
	if (cut)
		strbuf_setlen(&r.body, r.body.len / 2);
	snprintf(line, sizeof(line), "api action=%s service=%s status=%u%s%s%s", act,
		 svc == LCAPI_EC2 ? "ec2" : "autoscaling", r.status, r.code[0] ? " code=" : "",
		 r.code, cut ? " fault=cut" : "");
	/* describes that went well at debug: a loop polling every few seconds is not news */
	if (r.code[0] || cut || strncmp(act, "Describe", 8))
		log_info("%s", line);
	else
		log_debug("%s", line);
	mr = reply(c, r.status, "text/xml", r.body.buf, r.body.len);
out:
	if (rc || !p || !body)
		log_warnx("api action=%s: out of memory building the answer", act);
	lcapi_resp_release(&r);
	free(body);
	free(p);
	return mr;
}

/* ---------------------------------------------------------------- admin */

static json_t *state_json(struct lcloud *lc)
{
	const struct lcloud_faults *f = &lc->cfg.faults;
	json_t *root = json_object(), *groups = json_array(), *insts = json_array();
	int64_t now = now_ms();
	size_t i;

	for (i = 0; i < lcworld_ngroups(lc->w); i++) {
		const struct lcworld_group *g = lcworld_group(lc->w, i);
		json_array_append_new(groups, json_pack("{s:s, s:i, s:i, s:i, s:i}", "name",
				      g->name, "min", g->min_size, "max", g->max_size, "desired",
				      g->desired, "live", lcworld_live(lc->w, (int)i)));
	}
	for (i = 0; i < lcworld_ninst(lc->w); i++) {
		const struct lcworld_inst *in = lcworld_inst(lc->w, i);
		json_array_append_new(insts, json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, "
				      "s:i, s:b, s:I}", "id", in->id, "group",
				      lcworld_group(lc->w, (size_t)in->group)->name, "ip", in->ip,
				      "state", lcworld_state_asg(in->state), "healthy", in->healthy,
				      "protected", in->protect, "visible", now >= in->visible_ms,
				      "tagged", !in->untagged,
				      "pid", in->pid, "process_running", in->proc_running,
				      "launched_ms", (json_int_t)in->launched_ms));
	}
	json_object_set_new(root, "groups", groups);
	json_object_set_new(root, "instances", insts);
	json_object_set_new(root, "faults", json_pack("{s:i, s:i, s:i, s:i, s:I, s:s}",
			    "throttle_every", f->throttle_every, "error_every", f->error_every,
			    "cut_every", f->cut_every, "page_size", f->page_size, "visibility_ms",
			    (json_int_t)f->visibility_ms, "deny", f->deny));
	json_object_set_new(root, "calls", json_integer((json_int_t)lc->calls));
	json_object_set_new(root, "requests", json_integer((json_int_t)lc->requests));
	return root;
}

static enum MHD_Result admin_state(struct lcloud *lc, struct MHD_Connection *c)
{
	json_t *j = state_json(lc);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	enum MHD_Result r;

	json_decref(j);
	if (!s)
		return reply_text(c, 500, "out of memory\n");
	r = reply(c, 200, "application/json", s, strlen(s));
	free(s);
	return r;
}

struct fault_args {
	struct lcloud_faults f;
	struct err e;
	int bad;
};

static enum MHD_Result fault_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct fault_args *a = cls;

	(void)kind;
	if (!a->bad && lcloud_faults_set(&a->f, k, v ? v : "", &a->e))
		a->bad = 1;
	return MHD_YES;
}

static enum MHD_Result admin_faults(struct lcloud *lc, struct MHD_Connection *c)
{
	struct fault_args a;

	memset(&a, 0, sizeof(a));
	a.f = lc->cfg.faults;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, fault_arg, &a);
	if (a.bad)
		return reply_text(c, 400, a.e.msg);
	lc->cfg.faults = a.f;
	lcworld_set_visibility(lc->w, a.f.visibility_ms);
	log_info("faults throttle_every=%d error_every=%d cut_every=%d page_size=%d "
		 "visibility_ms=%" PRId64 " deny=%s", a.f.throttle_every, a.f.error_every,
		 a.f.cut_every, a.f.page_size, a.f.visibility_ms, a.f.deny[0] ? a.f.deny : "-");
	return admin_state(lc, c);
}

static enum MHD_Result admin_instance(struct lcloud *lc, struct MHD_Connection *c,
				      const char *rest)
{
	char id[32], verb[16];
	struct lcworld_inst *in;
	struct err e = ERR_INIT;

	if (sscanf(rest, "%31[^/]/%15s", id, verb) != 2)
		return reply_text(c, 404, "unknown admin endpoint\n");
	in = lcworld_find(lc->w, id);
	if (!in || in->state == LCWORLD_TERMINATED)
		return reply_text(c, 404, "no such instance\n");
	if (!strcmp(verb, "kill")) {
		if (in->pid <= 0 || kill(-in->pid, SIGKILL))
			return reply_text(c, 409, "the instance has no process\n");
		log_info("admin: killed the processes of instance %s", in->id);
		return reply_text(c, 200, "killed\n");
	}
	if (!strcmp(verb, "untag")) {
		in->untagged = 1;
		log_info("admin: instance %s lost its group tag", in->id);
		return reply_text(c, 200, "untagged\n");
	}
	if (!strcmp(verb, "terminate")) {
		if (lcworld_fail(lc->w, id, now_ms(), &e))
			return reply_text(c, 404, e.msg);
		log_info("admin: instance %s terminated out of band", id);
		return reply_text(c, 200, "terminating\n");
	}
	return reply_text(c, 404, "unknown admin endpoint\n");
}

static enum MHD_Result admin_group(struct lcloud *lc, struct MHD_Connection *c, const char *name)
{
	const char *d = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "desired");
	struct err e = ERR_INIT;
	long v;

	if (!d || parse_count(d, LCWORLD_MAX_SIZE, &v))
		return reply_text(c, 400, "desired=N is required\n");
	if (lcworld_set_desired(lc->w, name, (int)v, &e))
		return reply_text(c, 400, e.msg);
	log_info("admin: group %s desired capacity %ld", name, v);
	return admin_state(lc, c);
}

static int loopback_client(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr_in *sa;

	if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
		return 0;
	sa = (const struct sockaddr_in *)(const void *)ci->client_addr;
	return (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
}

static enum MHD_Result admin(struct lcloud *lc, struct MHD_Connection *c, const char *method,
			     const char *url)
{
	if (!loopback_client(c))
		return reply_text(c, 403, "the admin endpoint answers loopback clients only\n");
	if (!strcmp(url, "/_admin/state") && !strcmp(method, "GET"))
		return admin_state(lc, c);
	if (strcmp(method, "POST"))
		return reply_text(c, 405, "admin changes are POSTs\n");
	if (!strcmp(url, "/_admin/faults"))
		return admin_faults(lc, c);
	if (!strncmp(url, "/_admin/instances/", 18))
		return admin_instance(lc, c, url + 18);
	if (!strncmp(url, "/_admin/groups/", 15))
		return admin_group(lc, c, url + 15);
	return reply_text(c, 404, "unknown admin endpoint\n");
}

/* ---------------------------------------------------------------- dispatch */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **ctx)
{
	struct lcloud *lc = cls;
	struct conn *cs = *ctx;

	(void)version;
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return MHD_NO;
		strbuf_init(&cs->body, LCLOUD_BODY_MAX);
		*ctx = cs;
		return MHD_YES;
	}
	if (*size) {
		if (!cs->too_large && strbuf_add(&cs->body, data, *size))
			cs->too_large = 1;
		*size = 0;
		return MHD_YES;
	}
	if (!strncmp(url, "/_admin/", 8))
		return admin(lc, c, method, url);
	if (strcmp(method, "POST") || strcmp(url, "/"))
		return reply_text(c, 404, "the Query API is POST / with a form-encoded body\n");
	return api(lc, c, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *cs = *ctx;

	(void)cls, (void)c, (void)toe;
	if (cs) {
		strbuf_release(&cs->body);
		free(cs);
	}
	*ctx = NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static int copy_config(struct lcloud *lc, const struct lcloud_config *cfg, struct err *e)
{
	size_t i;

	lc->cfg = *cfg;
	lc->region = strdup(cfg->region ? cfg->region : "us-east-1");
	if (cfg->instance_cmd && !*cfg->instance_cmd)
		lc->cfg.instance_cmd = NULL;   /* "" runs nothing */
	if (cfg->stop_cmd && !*cfg->stop_cmd)
		lc->cfg.stop_cmd = NULL;
	cfg = &lc->cfg;
	lc->instance_cmd = cfg->instance_cmd ? strdup(cfg->instance_cmd) : NULL;
	lc->stop_cmd = cfg->stop_cmd ? strdup(cfg->stop_cmd) : NULL;
	lc->log_dir = cfg->instance_log_dir ? strdup(cfg->instance_log_dir) : NULL;
	if (!lc->region || (cfg->instance_cmd && !lc->instance_cmd) ||
	    (cfg->stop_cmd && !lc->stop_cmd) || (cfg->instance_log_dir && !lc->log_dir))
		return err_set(e, SP_ENOMEM, "out of memory");
	for (i = 0; i < cfg->nkeys; i++) {
		lc->keys[i][0] = strdup(cfg->keys[i].access_key_id);
		lc->keys[i][1] = strdup(cfg->keys[i].secret_access_key);
		if (!lc->keys[i][0] || !lc->keys[i][1])
			return err_set(e, SP_ENOMEM, "out of memory");
	}
	return 0;
}

static int check_config(const struct lcloud_config *cfg, struct err *e)
{
	size_t i;

	if (!cfg->nkeys || cfg->nkeys > LCLOUD_MAX_KEYS)
		return err_set(e, SP_EINVAL, "no credentials: give --credentials FILE or set "
			       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	for (i = 0; i < cfg->nkeys; i++)
		if (!cfg->keys[i].access_key_id || !*cfg->keys[i].access_key_id ||
		    !cfg->keys[i].secret_access_key || !*cfg->keys[i].secret_access_key)
			return err_set(e, SP_EINVAL, "credentials %zu: empty key or secret", i + 1);
	if (!cfg->ngroups)
		return err_set(e, SP_EINVAL, "no group: give --group NAME[:MIN:MAX:DESIRED]");
	if (cfg->kill_ms < 0 || cfg->agent_port < 0 || cfg->agent_port > 65535)
		return err_set(e, SP_EINVAL, "kill timeout or agent port out of range");
	return 0;
}

static int start_http(struct lcloud *lc, struct err *e)
{
	const char *addr = lc->cfg.listen_addr ? lc->cfg.listen_addr : "127.0.0.1";
	const union MHD_DaemonInfo *di;
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)lc->cfg.port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return err_set(e, SP_EINVAL, "listen address '%s' is not an IPv4 address", addr);
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return err_set(e, SP_EINVAL, "listen address '%s' is not on loopback "
			       "(127.0.0.0/8)", addr);
	lc->mhd = MHD_start_daemon(MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, lc,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, lc, MHD_OPTION_END);
	if (!lc->mhd)
		return err_set(e, SP_EIO, "could not listen on %s:%d (address in use or not "
			       "available)", addr, lc->cfg.port);
	di = MHD_get_daemon_info(lc->mhd, MHD_DAEMON_INFO_BIND_PORT);
	lc->port = di && di->port ? di->port : lc->cfg.port;
	return 0;
}

int lcloud_new(const struct lcloud_config *cfg, struct lcloud **out, struct err *e)
{
	struct lcworld_config wc;
	struct lcworld_hooks hk;
	struct lcloud *lc;
	char az[64];
	int64_t now = now_ms();
	size_t i;
	int rc;

	rc = check_config(cfg, e);
	if (rc)
		return rc;
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return err_set(e, SP_ENOMEM, "out of memory");
	rc = copy_config(lc, cfg, e);
	if (!rc)
		rc = child_env_build(lc, e);
	memset(&wc, 0, sizeof(wc));
	wc.boot_ms = cfg->boot_ms;
	wc.terminate_ms = cfg->terminate_ms;
	wc.gone_ms = cfg->gone_ms;
	wc.visibility_ms = cfg->faults.visibility_ms;
	wc.net = cfg->net;
	wc.scale_in = cfg->scale_in;
	wc.seed = cfg->seed;
	snprintf(az, sizeof(az), "%sa", lc->region ? lc->region : "us-east-1");
	wc.az = az;
	hk.start = hook_start;
	hk.stop = hook_stop;
	hk.addr_ok = hook_addr_ok;
	hk.ctx = lc;
	if (!rc)
		rc = lcworld_new(&wc, &hk, &lc->w, e);
	for (i = 0; !rc && i < cfg->ngroups; i++)
		rc = lcworld_add_group(lc->w, cfg->groups[i].name, cfg->groups[i].min,
				       cfg->groups[i].max, cfg->groups[i].desired, now, e);
	if (!rc)
		rc = start_http(lc, e);
	if (rc) {
		lcloud_free(lc);
		return rc;
	}
	*out = lc;
	return 0;
}

int lcloud_port(const struct lcloud *lc)
{
	return lc->port;
}

void lcloud_stop(struct lcloud *lc)
{
	lc->stopping = 1;
}

static int procs_left(struct lcloud *lc)
{
	size_t i;
	int n = (int)lc->nhelpers;

	for (i = 0; i < lcworld_ninst(lc->w); i++)
		n += lcworld_inst(lc->w, i)->proc_running;
	return n;
}

/* Terminate everything: SIGTERM, wait up to the kill timeout, SIGKILL, reap. */
static void shutdown_all(struct lcloud *lc)
{
	int64_t deadline = now_ms() + lc->cfg.kill_ms;
	struct timespec ts = { 0, 20 * 1000000L };
	size_t i;

	lcworld_stop_all(lc->w, now_ms());
	while (procs_left(lc) && now_ms() < deadline) {
		nanosleep(&ts, NULL);
		reap(lc);
	}
	kill_overdue(lc, now_ms(), 1);
	for (i = 0; i < lc->nhelpers; i++)
		kill(-lc->helpers[i], SIGKILL);
	deadline = now_ms() + 1000;
	while (procs_left(lc) && now_ms() < deadline) {
		nanosleep(&ts, NULL);
		reap(lc);
	}
}

int lcloud_run(struct lcloud *lc, struct err *e)
{
	int64_t now;

	(void)e;
	log_info("local provider listening on 127.0.0.1:%d region=%s groups=%zu", lc->port,
		 lc->region, lcworld_ngroups(lc->w));
	while (!lc->stopping) {
		MHD_run_wait(lc->mhd, TICK_MS);
		now = now_ms();
		reap(lc);
		lcworld_tick(lc->w, now);
		kill_overdue(lc, now, 0);
	}
	log_info("local provider stopping: terminating %zu instances", lcworld_ninst(lc->w));
	shutdown_all(lc);
	return 0;
}

void lcloud_free(struct lcloud *lc)
{
	size_t i;

	if (!lc)
		return;
	if (lc->mhd)
		MHD_stop_daemon(lc->mhd);
	lcworld_free(lc->w);
	for (i = 0; i < LCLOUD_MAX_KEYS; i++) {
		free(lc->keys[i][0]);
		if (lc->keys[i][1])
			memset(lc->keys[i][1], 0, strlen(lc->keys[i][1]));
		free(lc->keys[i][1]);
	}
	child_env_free(lc->child_env);
	free(lc->region);
	free(lc->instance_cmd);
	free(lc->stop_cmd);
	free(lc->log_dir);
	free(lc);
}
