/* config.c - spinupd's key=value configuration (see config.h). */
#include "reconciler/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/strbuf.h"
#include "model/banned.h"

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	/* Production drivers by default: the simulator writes invented status, so it
	 * must be asked for (--cloud sim --agent sim) and never runs by accident. */
	str_copy(c->cloud, sizeof(c->cloud), "aws");
	str_copy(c->agent, sizeof(c->agent), "http");
	c->period_ms = 10000;
	c->busy_period_ms = 1000;
	c->jitter_pct = 10;
	str_copy(c->lease_key, sizeof(c->lease_key), "spinup:leader");
	str_copy(c->lease_name, sizeof(c->lease_name), "spinup");
	c->lease_ttl_ms = 15000;
	c->redis_timeout_ms = 1000;
	c->max_mutations = 500;
	c->history_days = 14;
	c->sim_seed = 1;
	c->sim_tick_ms = 100;
	c->sim_launch_ms = 3000;
	c->sim_agent_boot_ms = 500;
	c->sim_container_start_ms = 1000;
	c->sim_container_ready_ms = 500;
	c->sim_terminate_ms = 2000;
	plan_config_defaults(&c->plan);
}

enum ktype { K_STR, K_I64, K_INT, K_U64, K_BOOL };

struct key {
	const char *name;
	enum ktype type;
	size_t off, size;
	int64_t min, max;
};

#define KS(n) { #n, K_STR, offsetof(struct config, n), sizeof(((struct config *)0)->n), 0, 0 }
#define KI(n, lo, hi) { #n, K_INT, offsetof(struct config, n), 0, lo, hi }
#define KL(n, lo, hi) { #n, K_I64, offsetof(struct config, n), 0, lo, hi }
#define PL(k, f, lo, hi) { k, K_I64, offsetof(struct config, plan.f), 0, lo, hi }
#define PI(k, f, lo, hi) { k, K_INT, offsetof(struct config, plan.f), 0, lo, hi }

static const struct key keys[] = {
	KS(database_url), KS(redis_url), KS(cloud), KS(agent),
	KL(period_ms, 10, 3600000), KL(busy_period_ms, 10, 3600000), KI(jitter_pct, 0, 50),
	KS(lease_key), KS(lease_name), KI(lease_ttl_ms, 300, 600000),
	KI(redis_timeout_ms, 10, 60000), KI(max_mutations, 0, 1000000), KI(history_days, 0, 36500),
	KS(metrics_addr), KS(holder),
	{ "sim_seed", K_U64, offsetof(struct config, sim_seed), 0, 0, 0 },
	KL(sim_tick_ms, 1, 60000), KL(sim_launch_ms, 0, 3600000),
	KL(sim_agent_boot_ms, 0, 3600000), KL(sim_container_start_ms, 0, 3600000),
	KL(sim_container_ready_ms, 0, 3600000), KL(sim_terminate_ms, 0, 3600000),
	PL("plan_launch_grace_ms", launch_grace_ms, 0, 86400000),
	PL("plan_register_timeout_ms", register_timeout_ms, 0, 86400000),
	PL("plan_launch_timeout_ms", launch_timeout_ms, 0, 86400000),
	PL("plan_idle_cooldown_ms", idle_cooldown_ms, 0, 86400000),
	PL("plan_orphan_grace_ms", orphan_grace_ms, 0, 86400000),
	PL("plan_backoff_base_ms", backoff_base_ms, 1, 86400000),
	PL("plan_backoff_max_ms", backoff_max_ms, 1, 86400000),
	PI("plan_destructive_budget", destructive_budget, 0, 1000000),
	PL("plan_budget_window_ms", budget_window_ms, 1, 86400000),
	KS(aws_region), KS(aws_endpoint), KS(agent_secret_file), KS(debug_stop_at),
	{ "debug", K_BOOL, offsetof(struct config, debug), 0, 0, 1 },
};

static const struct key *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int set_number(struct config *c, const struct key *k, const char *v, const char *where,
		      struct err *e)
{
	char *end;
	long long x;

	errno = 0;
	if (k->type == K_U64) {
		unsigned long long u = strtoull(v, &end, 10);
		if (errno || end == v || *end)
			return err_set(e, SP_EINVAL, "%s: %s: not a number: '%s'", where, k->name, v);
		*(uint64_t *)((char *)c + k->off) = u;
		return 0;
	}
	if (k->type == K_BOOL) {
		int b = !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1");
		if (!b && strcmp(v, "no") && strcmp(v, "false") && strcmp(v, "0"))
			return err_set(e, SP_EINVAL, "%s: %s: expected yes or no, not '%s'", where,
				       k->name, v);
		*(int *)((char *)c + k->off) = b;
		return 0;
	}
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return err_set(e, SP_EINVAL, "%s: %s: not a number: '%s'", where, k->name, v);
	if (x < k->min || x > k->max)
		return err_set(e, SP_EINVAL, "%s: %s: %lld is out of range [%lld, %lld]", where,
			       k->name, x, (long long)k->min, (long long)k->max);
	if (k->type == K_INT)
		*(int *)((char *)c + k->off) = (int)x;
	else
		*(int64_t *)((char *)c + k->off) = x;
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* One line; where is "FILE:LINE". */
static int parse_line(struct config *c, char *line, const char *file, int lineno, struct err *e)
{
	char where[512], *s = trim(line), *eq, *k, *v;
	const struct key *key;

	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq)
		return err_set(e, SP_EINVAL, "%s:%d:%d: expected key = value", file, lineno,
			       (int)(s - line) + 1);
	*eq = '\0';
	k = trim(s);
	v = trim(eq + 1);
	snprintf(where, sizeof(where), "%s:%d:%d", file, lineno, (int)(v - line) + 1);
	key = find_key(k);
	if (!key)
		return err_set(e, SP_EINVAL, "%s:%d:%d: unknown key '%s'", file, lineno,
			       (int)(k - line) + 1, k);
	if (key->type != K_STR)
		return set_number(c, key, v, where, e);
	if (str_copy((char *)c + key->off, key->size, v))
		return err_set(e, SP_EINVAL, "%s: %s: longer than %zu bytes", where, key->name,
			       key->size - 1);
	return 0;
}

/* A URL with a password in its userinfo ("scheme://user:pass@host"). */
static int has_password(const char *url)
{
	const char *p = strstr(url, "://"), *at, *colon;

	if (!p)
		return strstr(url, "password=") != NULL;
	p += 3;
	at = strchr(p, '@');
	colon = strchr(p, ':');
	return at && colon && colon < at && colon + 1 < at;
}

static int parse_file(const char *path, struct config *c, struct err *e)
{
	char line[CONFIG_LINE_MAX];
	struct stat st;
	FILE *f = fopen(path, "r");
	int rc = 0, n = 0;

	if (!f)
		return err_set(e, SP_EINVAL, "%s: cannot open: %s", path, strerror(errno));
	while (!rc && fgets(line, sizeof(line), f)) {
		if (++n > CONFIG_LINES_MAX)
			rc = err_set(e, SP_ELIMIT, "%s: more than %d lines", path, CONFIG_LINES_MAX);
		else if (!strchr(line, '\n') && !feof(f))
			rc = err_set(e, SP_ELIMIT, "%s:%d:1: line longer than %d bytes", path, n,
				     CONFIG_LINE_MAX - 2);
		else
			rc = parse_line(c, line, path, n, e);
	}
	if (!rc && (has_password(c->database_url) || has_password(c->redis_url)) &&
	    fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		rc = err_set(e, SP_EDENIED, "%s: holds a password and is readable by others"
			     " (chmod 600 it)", path);
	fclose(f);
	return rc;
}

int config_validate(const struct config *c, struct err *e)
{
	if (strcmp(c->cloud, "sim") && strcmp(c->cloud, "aws"))
		return err_set(e, SP_EINVAL, "cloud: expected sim or aws, not '%s'", c->cloud);
	if (strcmp(c->agent, "sim") && strcmp(c->agent, "http"))
		return err_set(e, SP_EINVAL, "agent: expected sim or http, not '%s'", c->agent);
	if (!strcmp(c->cloud, "sim") != !strcmp(c->agent, "sim"))
		return err_set(e, SP_EINVAL, "cloud '%s' with agent '%s': the sim cloud needs the"
			       " sim agents and the other way round", c->cloud, c->agent);
	if (!c->database_url[0])
		return err_set(e, SP_EINVAL, "no database: set database_url or DATABASE_URL");
	if (!c->redis_url[0])
		return err_set(e, SP_EINVAL, "no redis: set redis_url or REDIS_URL");
	if (c->debug_stop_at[0] && strcmp(c->debug_stop_at, "pending") &&
	    strcmp(c->debug_stop_at, "record"))
		return err_set(e, SP_EINVAL, "debug_stop_at: expected pending or record");
	if (c->metrics_addr[0] && strncmp(c->metrics_addr, "127.", 4) &&
	    strncmp(c->metrics_addr, "localhost:", 10))
		return err_set(e, SP_EINVAL, "metrics_addr '%s': loopback addresses only",
			       c->metrics_addr);
	if (!strcmp(c->agent, "http") && !c->agent_secret_file[0])
		return err_set(e, SP_EINVAL, "agent http needs agent_secret_file");
	return 0;
}

int config_load(const char *path, struct config *out, struct err *e)
{
	struct config *c = malloc(sizeof(*c));
	const char *env;
	int rc = c ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (!rc)
		config_defaults(c);
	if (!rc && path)
		rc = parse_file(path, c, e);
	if (!rc && !c->database_url[0] && (env = getenv("DATABASE_URL")) &&
	    str_copy(c->database_url, sizeof(c->database_url), env))
		rc = err_set(e, SP_EINVAL, "DATABASE_URL is too long");
	if (!rc && !c->redis_url[0] && (env = getenv("REDIS_URL")) &&
	    str_copy(c->redis_url, sizeof(c->redis_url), env))
		rc = err_set(e, SP_EINVAL, "REDIS_URL is too long");
	if (!rc && !c->holder[0]) {
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		snprintf(c->holder, sizeof(c->holder), "%s:%d", host, (int)getpid());
	}
	if (!rc)
		*out = *c;
	free(c);
	return rc;
}
