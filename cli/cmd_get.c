/* cmd_get.c - spinctl get workspaces|pools: spec beside the latest status. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "model/strbuf.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl get workspaces|pools [NAME] [--pool POOL] [-o table|wide|json|yaml] [--watch]\n\n"
	"List workspaces (with their phase, instance, url and age) or pools.\n\n"
	"  -o, --output FORMAT  table (default), wide, json or yaml\n"
	"      --pool POOL      only workspaces of this pool\n"
	"  -w, --watch          print again whenever desired state or status changes\n"
	"                       (LISTEN spinup_desired, spinup_status); stop with ^C\n"
	"      --db URL         the database (default $DATABASE_URL)\n";

enum fmt { FMT_TABLE, FMT_WIDE, FMT_JSON, FMT_YAML };

struct get_opts {
	int pools;            /* 0: workspaces */
	const char *name;
	const char *pool;
	enum fmt fmt;
	int watch;
};

/* ------------------------------------------------------------ JSON */

static json_t *ms_json(int64_t ms)
{
	char t[40];

	if (!ms)
		return json_null();
	cli_format_time(ms, t, sizeof(t));
	return json_string(t);
}

static json_t *labels_json(const struct workspace_spec *w)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < w->nlabels; i++)
		json_object_set_new(o, w->labels[i].key, json_string(w->labels[i].value));
	return o;
}

static json_t *conds_json(const struct workspace_status *st)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < COND_MAX; i++) {
		const struct condition *c = &st->conds[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:o}",
			"type", cond_type_name((enum cond_type)i),
			"status", cond_status_name(c->status), "reason", c->reason,
			"message", c->message, "lastTransitionTime", ms_json(c->last_transition)));
	}
	return a;
}

static json_t *status_json(const struct pgstore_ws_row *r)
{
	const struct workspace_status *st = &r->status;

	if (!r->has_status)
		return json_null();
	return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o}",
		"phase", ws_phase_name(st->phase), "observedGeneration", (json_int_t)st->observed_generation,
		"instanceId", st->instance_id, "address", st->address, "url", st->url,
		"errorClass", sp_class_name(st->error_class), "attempts", st->attempts,
		"nextAttemptAt", ms_json(st->next_attempt_at), "phaseSince", ms_json(st->phase_since),
		"lastSyncAt", ms_json(st->last_sync_at), "conditions", conds_json(st));
}

/*
 * Drop the optional string fields of o's "spec" that are empty: a manifest
 * says "none" by leaving them out, so `get -o yaml` output applies back.
 */
static json_t *drop_empty(json_t *o, const char *const *keys)
{
	json_t *spec = json_object_get(o, "spec");
	json_t *storage = json_object_get(spec, "storage");
	const char *v;

	for (; spec && *keys; keys++) {
		json_t *in = strncmp(*keys, "storage.", 8) ? spec : storage;
		const char *k = in == spec ? *keys : *keys + 8;
		if ((v = json_string_value(json_object_get(in, k))) && !v[0])
			json_object_del(in, k);
	}
	return o;
}

static json_t *ws_json(const struct pgstore_ws_row *r)
{
	static const char *const optional[] = { "template", "image", "storage.bucket",
						"storage.prefix", NULL };
	const struct workspace_spec *w = &r->spec;
	char cpu[24];

	snprintf(cpu, sizeof(cpu), "%dm", w->cpu_milli);
	return drop_empty(json_pack("{s:s, s:s, s:{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o}, "
			 "s:{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:i}, s:{s:s, s:s}, s:i, s:o}, s:o}",
		"apiVersion", MANIFEST_API_VERSION, "kind", "Workspace",
		"metadata", "name", w->name, "pool", w->pool, "id", (json_int_t)w->id,
		"generation", (json_int_t)w->generation, "createdAt", ms_json(r->created_at),
		"deletionRequestedAt", ms_json(w->deletion_requested_at),
		"pausedUntil", ms_json(w->paused_until),
		"reconcileRequestedAt", ms_json(w->reconcile_requested_at),
		"spec", "owner", w->owner, "pool", w->pool, "state", ws_state_name(w->state),
		"template", w->template_name, "image", w->image,
		"resources", "cpu", cpu, "memoryMiB", w->memory_mib,
		"storage", "bucket", w->bucket, "prefix", w->prefix,
		"idleTimeoutSeconds", w->idle_timeout_s, "labels", labels_json(w),
		"status", status_json(r)), optional);
}

static json_t *pool_json(const struct pgstore_pool_row *r)
{
	static const char *const optional[] = { "defaultImage", NULL };
	const struct pool_spec *p = &r->spec;

	return drop_empty(json_pack("{s:s, s:s, s:{s:s, s:I, s:I, s:o, s:o, s:o, s:b}, "
			 "s:{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:s}, s:{s:i, s:i, s:b, s:o, s:o, s:o}}",
		"apiVersion", MANIFEST_API_VERSION, "kind", "Pool",
		"metadata", "name", p->name, "id", (json_int_t)p->id,
		"generation", (json_int_t)p->generation, "createdAt", ms_json(r->created_at),
		"deletionRequestedAt", ms_json(r->deletion_requested_at),
		"pausedUntil", ms_json(p->paused_until), "observeOnly", p->observe_only,
		"spec", "asgName", p->asg_name, "region", p->region,
		"instanceSlots", p->slots_per_instance, "warmInstances", p->warm_instances,
		"minInstances", p->min_instances, "maxInstances", p->max_instances,
		"agentPort", p->agent_port, "defaultImage", p->default_image,
		"status", "workspaces", r->nworkspaces, "instances", r->ninstances,
		"safetyStopped", r->safety_stopped, "safetyStoppedAt", ms_json(r->safety_stopped_at),
		"safetyClearRequestedAt", ms_json(p->safety_clear_requested_at),
		"safetyClearHandledAt", ms_json(r->safety_clear_handled_at)), optional);
}

/* ------------------------------------------------------------ YAML */

static void yaml_scalar(json_t *v, FILE *f)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);

	fputs(s ? s : "null", f);
	free(s);
}

static void yaml_value(json_t *v, int indent, FILE *f);

/* A key is printed plain when it is an identifier, else double-quoted. */
static void yaml_key(const char *key, FILE *f)
{
	size_t i, n = strlen(key);
	int plain = n > 0 && ((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z'));
	json_t *k;

	for (i = 0; plain && i < n; i++) {
		char c = key[i];
		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '_' || c == '-' || c == '.' || c == '/';
	}
	if (plain) {
		fprintf(f, "%s:", key);
		return;
	}
	k = json_string(key);
	yaml_scalar(k, f);
	json_decref(k);
	fputc(':', f);
}

static void yaml_members(json_t *o, int indent, int first_inline, FILE *f)
{
	const char *key;
	json_t *v;
	int first = 1;

	json_object_foreach(o, key, v) {
		if (!(first && first_inline))
			fprintf(f, "%*s", indent, "");
		first = 0;
		yaml_key(key, f);
		if ((json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v))) {
			fputc('\n', f);
			yaml_value(v, indent + 2, f);
		} else {
			fputc(' ', f);
			yaml_scalar(v, f);
			fputc('\n', f);
		}
	}
}

static void yaml_value(json_t *v, int indent, FILE *f)
{
	size_t i;

	if (json_is_object(v)) {
		yaml_members(v, indent, 0, f);
	} else if (json_is_array(v)) {
		for (i = 0; i < json_array_size(v); i++) {
			json_t *item = json_array_get(v, i);
			fprintf(f, "%*s- ", indent, "");
			if (json_is_object(item) && json_object_size(item)) {
				yaml_members(item, indent + 2, 1, f);
			} else {
				yaml_scalar(item, f);
				fputc('\n', f);
			}
		}
	}
}

static void print_docs(json_t *docs, enum fmt fmt)
{
	size_t i;

	if (fmt == FMT_JSON) {
		json_t *list = json_pack("{s:s, s:O}", "kind", "List", "items", docs);
		char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(list);
		return;
	}
	for (i = 0; i < json_array_size(docs); i++) {
		fputs("---\n", stdout);
		yaml_value(json_array_get(docs, i), 0, stdout);
	}
}

/* ------------------------------------------------------------ tables */

static const char *ready_reason(const struct pgstore_ws_row *r)
{
	const struct condition *c = &r->status.conds[COND_READY];

	return r->has_status ? c->reason : "";
}

static void ws_table(const struct pgstore_ws_row *rows, size_t n, int wide)
{
	static const char *const head[] = { "NAME", "POOL", "OWNER", "STATE", "PHASE", "INSTANCE",
		"URL", "AGE", "GEN", "OBSERVED", "IMAGE", "CPU", "MEMORY", "READY", "REASON" };
	size_t ncols = wide ? 15 : 8, i, k;
	int64_t now = cli_now_ms();
	struct cli_table t;
	char buf[8][40];

	cli_table_init(&t, ncols);
	for (k = 0; k < ncols; k++)
		cli_table_add(&t, head[k]);
	for (i = 0; i < n; i++) {
		const struct pgstore_ws_row *r = &rows[i];
		const char *phase = r->has_status ? ws_phase_name(r->status.phase) : "-";
		if (r->spec.deletion_requested_at && (!r->has_status || r->status.phase != PHASE_DELETING))
			phase = "DELETE_REQUESTED";
		cli_format_age(r->created_at, now, buf[0], sizeof(buf[0]));
		cli_table_add(&t, r->spec.name);
		cli_table_add(&t, r->spec.pool);
		cli_table_add(&t, r->spec.owner);
		cli_table_add(&t, ws_state_name(r->spec.state));
		cli_table_add(&t, phase);
		cli_table_add(&t, r->has_status && r->status.instance_id[0] ? r->status.instance_id : "-");
		cli_table_add(&t, r->has_status && r->status.url[0] ? r->status.url : "-");
		cli_table_add(&t, buf[0]);
		if (!wide)
			continue;
		snprintf(buf[1], sizeof(buf[1]), "%lld", (long long)r->spec.generation);
		snprintf(buf[2], sizeof(buf[2]), "%lld",
			 (long long)(r->has_status ? r->status.observed_generation : 0));
		snprintf(buf[3], sizeof(buf[3]), "%dm", r->spec.cpu_milli);
		snprintf(buf[4], sizeof(buf[4]), "%dMi", r->spec.memory_mib);
		cli_table_add(&t, buf[1]);
		cli_table_add(&t, r->has_status ? buf[2] : "-");
		cli_table_add(&t, r->spec.image[0] ? r->spec.image : "(pool default)");
		cli_table_add(&t, buf[3]);
		cli_table_add(&t, buf[4]);
		cli_table_add(&t, r->has_status ? cond_status_name(r->status.conds[COND_READY].status) : "-");
		cli_table_add(&t, ready_reason(r)[0] ? ready_reason(r) : "-");
	}
	cli_table_print(&t, stdout);
	cli_table_release(&t);
}

/* The SAFETY column: "-", "stopped", or "stopped, clear requested" until spinupd sees it. */
static const char *safety_cell(const struct pgstore_pool_row *r)
{
	int64_t req = r->spec.safety_clear_requested_at;

	if (!r->safety_stopped)
		return "-";
	if (req > r->safety_clear_handled_at && req > r->safety_stopped_at)
		return "stopped, clear requested";
	return "stopped";
}

static void pool_table(const struct pgstore_pool_row *rows, size_t n, int wide)
{
	static const char *const head[] = { "NAME", "ASG", "REGION", "SLOTS", "WARM", "MIN", "MAX",
		"WORKSPACES", "INSTANCES", "AGE", "GEN", "PORT", "IMAGE", "PAUSED", "OBSERVE",
		"SAFETY" };
	size_t ncols = wide ? 16 : 10, i, k;
	int64_t now = cli_now_ms();
	struct cli_table t;
	char b[10][40];

	cli_table_init(&t, ncols);
	for (k = 0; k < ncols; k++)
		cli_table_add(&t, head[k]);
	for (i = 0; i < n; i++) {
		const struct pool_spec *p = &rows[i].spec;
		snprintf(b[0], 40, "%d", p->slots_per_instance);
		snprintf(b[1], 40, "%d", p->warm_instances);
		snprintf(b[2], 40, "%d", p->min_instances);
		snprintf(b[3], 40, "%d", p->max_instances);
		snprintf(b[4], 40, "%d", rows[i].nworkspaces);
		snprintf(b[5], 40, "%d", rows[i].ninstances);
		cli_format_age(rows[i].created_at, now, b[6], 40);
		cli_table_add(&t, p->name);
		cli_table_add(&t, p->asg_name);
		cli_table_add(&t, p->region);
		for (k = 0; k < 7; k++)
			cli_table_add(&t, b[k]);
		if (!wide)
			continue;
		snprintf(b[7], 40, "%lld", (long long)p->generation);
		snprintf(b[8], 40, "%d", p->agent_port);
		cli_format_time(p->paused_until, b[9], 40);
		cli_table_add(&t, b[7]);
		cli_table_add(&t, b[8]);
		cli_table_add(&t, p->default_image[0] ? p->default_image : "-");
		cli_table_add(&t, b[9]);
		cli_table_add(&t, p->observe_only ? "yes" : "no");
		cli_table_add(&t, safety_cell(&rows[i]));
	}
	cli_table_print(&t, stdout);
	cli_table_release(&t);
}

/* ------------------------------------------------------------ one listing */

static int show_workspaces(struct pgstore *s, const struct get_opts *o)
{
	struct pgstore_ws_row *rows = NULL;
	struct err e = ERR_INIT;
	size_t n = 0, i;
	json_t *docs;

	if (pgstore_list_workspaces(s, o->pool, o->name, &rows, &n, &e)) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	if (o->name && !n && !o->watch) {
		cli_error("workspace/%s not found", o->name);
		free(rows);
		return CLI_EXIT_ERROR;
	}
	if (o->fmt == FMT_TABLE || o->fmt == FMT_WIDE) {
		if (n)
			ws_table(rows, n, o->fmt == FMT_WIDE);
		else
			fprintf(stderr, "no workspaces\n");
	} else {
		docs = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(docs, ws_json(&rows[i]));
		print_docs(docs, o->fmt);
		json_decref(docs);
	}
	free(rows);
	return CLI_EXIT_OK;
}

static int show_pools(struct pgstore *s, const struct get_opts *o)
{
	struct pgstore_pool_row *rows = NULL;
	struct err e = ERR_INIT;
	size_t n = 0, i;
	json_t *docs;

	if (pgstore_list_pools(s, o->name, &rows, &n, &e)) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	if (o->name && !n && !o->watch) {
		cli_error("pool/%s not found", o->name);
		free(rows);
		return CLI_EXIT_ERROR;
	}
	if (o->fmt == FMT_TABLE || o->fmt == FMT_WIDE) {
		if (n)
			pool_table(rows, n, o->fmt == FMT_WIDE);
		else
			fprintf(stderr, "no pools\n");
	} else {
		docs = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(docs, pool_json(&rows[i]));
		print_docs(docs, o->fmt);
		json_decref(docs);
	}
	free(rows);
	return CLI_EXIT_OK;
}

static int show(struct pgstore *s, const struct get_opts *o)
{
	int rc = o->pools ? show_pools(s, o) : show_workspaces(s, o);

	fflush(stdout);
	return rc;
}

/* Set by SIGINT/SIGTERM during --watch; the only state a handler touches. */
static volatile sig_atomic_t watch_stop;

static void watch_on_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Without SA_RESTART, so the signal interrupts poll(). */
static void watch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Drain the notifications libpq has read; how many there were. */
static int drain_notifies(PGconn *c)
{
	PGnotify *n;
	int got = 0;

	while ((n = PQnotifies(c))) {
		got++;
		PQfreemem(n);
	}
	return got;
}

/*
 * Wait for a notification on either channel, then let a burst settle
 * (WATCH_SETTLE_MS without a new one, so a bulk apply prints once).
 * 0 on a notification, 1 when a signal asked to stop, -1 when the
 * connection broke.
 */
#define WATCH_POLL_MS 30000
#define WATCH_SETTLE_MS 100
static int wait_notify(PGconn *c)
{
	struct pollfd pfd;
	int got = 0, r;

	for (;;) {
		if (watch_stop)
			return 1;
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		if (pfd.fd < 0)
			return -1;
		r = poll(&pfd, 1, got ? WATCH_SETTLE_MS : WATCH_POLL_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 && got)
			return 0;
		if (r > 0 && !PQconsumeInput(c))
			return -1;
		got += drain_notifies(c);
	}
}

static int watch(struct pgstore *s, const struct get_opts *o)
{
	struct err e = ERR_INIT;
	int rc, w = 0;

	rc = pgstore_exec(s, "listen", "LISTEN " PGSTORE_CHANNEL_DESIRED, 0, NULL, NULL, &e);
	if (!rc)
		rc = pgstore_exec(s, "listen", "LISTEN " PGSTORE_CHANNEL_STATUS, 0, NULL, NULL, &e);
	if (rc) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	watch_signals();
	rc = show(s, o);
	while (!rc && !(w = wait_notify(pgstore_conn(s)))) {
		fputs("\n", stdout);
		rc = show(s, o);
	}
	if (w < 0) {
		cli_error("watch: connection to the database lost: %s",
			  PQerrorMessage(pgstore_conn(s)));
		return CLI_EXIT_ERROR;
	}
	return rc;
}

static int parse_format(const char *s, enum fmt *out)
{
	static const char *const names[] = { "table", "wide", "json", "yaml" };
	int i;

	for (i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum fmt)i;
			return 0;
		}
	}
	return -1;
}

static int parse_kind(const char *s, int *pools)
{
	if (!strcmp(s, "workspaces") || !strcmp(s, "workspace") || !strcmp(s, "ws"))
		*pools = 0;
	else if (!strcmp(s, "pools") || !strcmp(s, "pool"))
		*pools = 1;
	else
		return -1;
	return 0;
}

int cmd_get(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "pool", required_argument, NULL, 'p' },
		{ "watch", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct get_opts o = { 0, NULL, NULL, FMT_TABLE, 0 };
	struct pgstore *s = NULL;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "o:wh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (parse_format(optarg, &o.fmt))
				return cli_usage_error("get", "unknown output format '%s'", optarg);
			break;
		case 'p':
			o.pool = optarg;
			break;
		case 'w':
			o.watch = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("get", "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage_error("get", "what to get: workspaces or pools");
	if (parse_kind(argv[optind], &o.pools))
		return cli_usage_error("get", "cannot get '%s': workspaces or pools", argv[optind]);
	if (optind + 1 < argc)
		o.name = argv[optind + 1];
	if (optind + 2 < argc)
		return cli_usage_error("get", "unexpected argument '%s'", argv[optind + 2]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = o.watch ? watch(s, &o) : show(s, &o);
	pgstore_free(s);
	return rc;
}
