/*
 * config.h - spinupd's configuration: a key=value file (comments with #,
 * blank lines ignored), then the environment (DATABASE_URL, REDIS_URL) for
 * what the file leaves unset, then command-line flags.
 *
 * config_load parses a whole file into a new struct, reports every error as
 * FILE:LINE:COL: message (into e, the first one; all of them on stderr when
 * verbose), validates it, and only then hands it over: a failed reload keeps
 * the old configuration. A file that holds a secret (a password in a URL)
 * and can be read by group or others is refused.
 *
 * Keys (defaults in parentheses):
 *   database_url, redis_url       (environment)
 *   cloud = sim|aws (aws), agent = sim|http (http)
 *   period_ms (10000), jitter_pct (10)      the timer between passes
 *   busy_period_ms (1000)                   the timer while passes act or change status
 *   lease_key (spinup:leader), lease_name (spinup), lease_ttl_ms (15000)
 *   redis_timeout_ms (1000), max_mutations (500), debug = yes|no (no)
 *   history_days (14)                       pass rows, finished journal entries and
 *                                           resolved drift older than this are pruned
 *                                           (hourly; 0 keeps them; events are kept)
 *   metrics_addr (none)                     127.0.0.1:PORT, loopback only
 *   holder (host:pid)                       our lease value
 *   sim_seed (1), sim_tick_ms (100), sim_launch_ms (3000), sim_agent_boot_ms (500),
 *   sim_container_start_ms (1000), sim_container_ready_ms (500), sim_terminate_ms (2000)
 *   plan_launch_grace_ms, plan_register_timeout_ms, plan_launch_timeout_ms,
 *   plan_idle_cooldown_ms, plan_orphan_grace_ms, plan_backoff_base_ms, plan_backoff_max_ms,
 *   plan_destructive_budget, plan_budget_window_ms   (plan_config_defaults)
 *   aws_region, aws_endpoint, agent_secret_file       (aws / http drivers)
 *   debug_stop_at = pending|record          fault injection for tests: the
 *                                           leader SIGSTOPs itself once there
 */
#ifndef SPINUP_RECONCILER_CONFIG_H
#define SPINUP_RECONCILER_CONFIG_H

#include <stdint.h>

#include "model/err.h"
#include "model/plan.h"

#define CONFIG_LINE_MAX 4096
#define CONFIG_LINES_MAX 10000
#define CONFIG_VALUE_MAX 1023

struct config {
	char database_url[CONFIG_VALUE_MAX + 1];
	char redis_url[CONFIG_VALUE_MAX + 1];
	char cloud[16];
	char agent[16];
	int64_t period_ms;
	int64_t busy_period_ms;
	int jitter_pct;
	char lease_key[128];
	char lease_name[64];
	int lease_ttl_ms;
	int redis_timeout_ms;
	int max_mutations;
	int history_days;
	int debug;
	char metrics_addr[64];
	char holder[128];
	uint64_t sim_seed;
	int64_t sim_tick_ms, sim_launch_ms, sim_agent_boot_ms, sim_container_start_ms,
		sim_container_ready_ms, sim_terminate_ms;
	struct plan_config plan;
	char aws_region[64];
	char aws_endpoint[256];
	char agent_secret_file[256];
	char debug_stop_at[16];
};

/* Defaults (before the file, the environment and flags). */
void config_defaults(struct config *c);

/*
 * Parse path (NULL: defaults only) then fill what is unset from the
 * environment; validate. *out is written only on success.
 */
int config_load(const char *path, struct config *out, struct err *e);

/* Check what flags changed too (cloud/agent names, ranges). */
int config_validate(const struct config *c, struct err *e);

#endif
