/*
 * sim.h - the "sim" drivers: an in-memory world of Auto Scaling groups,
 * EC2 instances, agents and workspace containers, behind BOTH driver
 * interfaces (struct cloud, drivers/cloud.h; struct agentc, drivers/agentc.h).
 *
 * The world has a virtual clock (sim_now, advanced only by sim_tick) and
 * its own seeded PRNG, so the same seed and the same calls give the same
 * world, byte for byte. Nothing here reads the real clock or any global.
 *
 * What it models:
 *   - groups with min/max/desired; the group's controller launches
 *     instances up to desired and, above desired, terminates unprotected
 *     instances only (scale-in protection is respected); explicit
 *     TerminateInstanceInAutoScalingGroup works on any instance
 *   - instance lifecycle: Pending -> InService after launch_ms, a private
 *     IP, Terminating -> Terminated after terminate_ms; eventual
 *     consistency: a new instance may be invisible to the group listing
 *     and to EC2 for a while
 *   - one agent per InService instance, up agent_boot_ms after InService,
 *     with a highest-epoch-seen: a request with a lower epoch is refused
 *     with SP_EFENCED (invariant 5)
 *   - containers: ensure creates one that restores files from the
 *     workspace's bucket snapshot, runs after container_start_ms and is
 *     ready container_ready_ms later; sync copies its files to the bucket;
 *     stop/remove sync first when asked (and refuse to sync after a failed
 *     restore: SP_ECONFLICT); a start that expects a snapshot and finds
 *     none fails with restore_failed
 *   - agents asked not to wait (what drivers/agenthttp.c sends): a sync,
 *     stop or remove that meets a slow sync, or one already running, is
 *     accepted (0) and pending (obs_container.pending, last_sync running);
 *     when the sync ends the stop or remove happens if it succeeded, and a
 *     failed one leaves the container as it was (last_sync failed); an
 *     ensure meanwhile is SP_EBUSY
 *   - faults (struct sim_faults): cloud API errors and throttling, partial
 *     describes (complete = 0), eventual consistency, instance death, agent
 *     outages (observed = 0) and call timeouts, container crashes
 *     (CS_EXITED), failing and slow syncs, failing restores
 *
 * Time: sim_tick advances the clock in steps of cfg.tick_ms; every timed
 * transition and every per-step fault happens at a step boundary. Driver
 * calls are instantaneous (they take no virtual time).
 *
 * Ownership: the world owns everything. sim_cloud() and sim_agentc() return
 * new drivers that borrow the world: free them (cloud_free, agentc_free)
 * before sim_world_free. Inspection functions lend pointers valid until the
 * next call that changes the world (a driver call or sim_tick).
 */
#ifndef SPINUP_SIM_H
#define SPINUP_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"
#include "../model/observed.h"
#include "agentc.h"
#include "cloud.h"

/* Limits of the world (crossing one is SP_ELIMIT). */
#define SIM_GROUPS_MAX 16
#define SIM_INSTANCES_MAX 65536     /* alive and terminated, over the world's life */
#define SIM_CONTAINERS_MAX 64       /* per agent */
#define SIM_LOG_MAX 65536           /* entries in each inspection log */

/*
 * Fault knobs. Probabilities are in [0, 1]: "per call" ones are drawn on
 * each driver call, "per step" ones on each tick step for each subject.
 */
struct sim_faults {
	double api_error;          /* per cloud call: SP_EUNAVAIL, no effect */
	double throttle;           /* per cloud call: SP_ETHROTTLED, no effect */
	double partial_describe;   /* per describe: a prefix only, complete = 0, SP_EUNAVAIL */
	int64_t consistency_ms;    /* a new instance is hidden up to this long (random) */
	double instance_death;     /* per step per live instance: dies (Terminating) */
	double agent_flap;         /* per step per agent: down for agent_flap_ms */
	int64_t agent_flap_ms;
	double agent_timeout;      /* per agent call: SP_ETIMEOUT (half of them after acting) */
	double container_crash;    /* per step per running container: CS_EXITED */
	double sync_fail;          /* per sync: SYNC_FAILED, SP_EUNAVAIL (when slow: later) */
	double sync_slow;          /* per sync: accepted, completes sync_slow_ms later */
	int64_t sync_slow_ms;
	double restore_fail;       /* per restore: restore_failed, CS_FAILED */
};

struct sim_config {
	int64_t start_ms;           /* the clock's initial value (ms since the epoch) */
	int64_t tick_ms;            /* step of sim_tick (default 1000) */
	int64_t launch_ms;          /* Pending -> InService (default 30000) */
	int64_t launch_jitter_ms;   /* + random [0, this) per instance (default 10000) */
	int64_t terminate_ms;       /* Terminating -> Terminated (default 20000) */
	int64_t agent_boot_ms;      /* InService -> agent answers (default 5000) */
	int64_t container_start_ms; /* ensure -> running, restore included (default 4000) */
	int64_t container_ready_ms; /* running -> ready (default 2000) */
	int agent_port;             /* where agents listen (default 7070) */
	int workspace_port_base;    /* containers listen from here up (default 8000) */
	struct sim_faults faults;   /* all zero by default: no faults */
};

/* Defaults as documented above, no faults. */
void sim_config_defaults(struct sim_config *c);

/* One group, as sim_add_group creates it. */
struct sim_group_config {
	const char *name;           /* the pool's asg_name */
	int min_size, max_size, desired;
	int slots;                  /* containers an agent accepts (capacity) */
	int new_instances_protected;/* NewInstancesProtectedFromScaleIn */
};

struct sim_world;

/* A new world. NULL only on allocation failure. cfg NULL: defaults. */
struct sim_world *sim_world_new(uint64_t seed, const struct sim_config *cfg);
void sim_world_free(struct sim_world *w);

/* Create a group (instances are launched by the next tick). 0, SP_ECONFLICT, SP_EINVAL, SP_ELIMIT. */
int sim_add_group(struct sim_world *w, const struct sim_group_config *g, struct err *e);

/*
 * Change an existing group's min, max, slots and protection default (as
 * UpdateAutoScalingGroup would; desired is moved into the new [min, max]).
 * g->desired is ignored. 0, SP_ENOTFOUND, SP_EINVAL.
 */
int sim_update_group(struct sim_world *w, const struct sim_group_config *g, struct err *e);

/* Drivers over the world (borrowing it). NULL on allocation failure. */
struct cloud *sim_cloud(struct sim_world *w);
struct agentc *sim_agentc(struct sim_world *w);

/* The virtual clock, and advancing it by ms (rounded up to whole steps). */
int64_t sim_now(const struct sim_world *w);
void sim_tick(struct sim_world *w, int64_t ms);

/*
 * Replace the fault knobs. sim_faults_off clears them all and ends agent
 * outages in progress; slow syncs already running still complete on time,
 * and instances already dying still terminate.
 */
void sim_set_faults(struct sim_world *w, const struct sim_faults *f);
void sim_faults_off(struct sim_world *w);
/* Draw from the world's PRNG (for harnesses that want one stream): [0, 1). */
double sim_random(struct sim_world *w);
uint64_t sim_random_u64(struct sim_world *w);

/* ---- inspection (tests and invariant checks) -------------------------------------------- */

enum sim_term_cause {
	SIM_TERM_API,          /* TerminateInstanceInAutoScalingGroup */
	SIM_TERM_SCALE_IN,     /* the group lowered its size to desired */
	SIM_TERM_HEALTH,       /* SetInstanceHealth(Unhealthy) -> replaced */
	SIM_TERM_DEATH,        /* fault: the instance died */
	SIM_TERM_MAX
};
const char *sim_term_cause_name(enum sim_term_cause c);

struct sim_instance_info {
	char id[OBS_INSTANCE_ID_MAX + 1];
	char group[64];
	char private_ip[OBS_ADDR_MAX + 1];
	enum inst_lifecycle lifecycle;
	int healthy, protected_from_scale_in;
	int agent_up;              /* the agent would answer now (no outage) */
	int64_t max_epoch;         /* highest epoch its agent has seen */
	size_t ncontainers;
	int64_t launched_at, terminated_at;
};

/* Every instance the world ever launched, in launch order. */
size_t sim_instance_count(const struct sim_world *w);
int sim_instance_get(const struct sim_world *w, size_t i, struct sim_instance_info *out);
/* Find by id; 0 or SP_ENOTFOUND. */
int sim_instance_find(const struct sim_world *w, const char *id, struct sim_instance_info *out);
/* Group sizes now; 0 or SP_ENOTFOUND. active counts Pending + InService. */
int sim_group_sizes(const struct sim_world *w, const char *name, int *min_size, int *max_size,
		    int *desired, int *active);

/* A container as the world knows it (ground truth, no fault applied). */
struct sim_container_info {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	enum inst_lifecycle lifecycle;   /* of its instance (Terminating: going away) */
	int64_t workspace_id;
	enum container_state state;
	int ready;
	int restore_failed;
	int dirty;                 /* files changed since the last good sync */
	int64_t files;             /* version of its files */
};

/* Containers of a workspace on instances that are not Terminated; up to max filled, count returned. */
size_t sim_containers_of(const struct sim_world *w, int64_t workspace_id,
			 struct sim_container_info *out, size_t max);
/* Containers on one instance; up to max filled, count returned (0 if unknown). */
size_t sim_containers_on(const struct sim_world *w, const char *instance_id,
			 struct sim_container_info *out, size_t max);
/* The workspace's bucket snapshot: 1 and its version, or 0 when none. */
int sim_bucket_get(const struct sim_world *w, int64_t workspace_id, int64_t *version);
/* Put (or with present = 0 drop) a snapshot, e.g. to test restore. 0, SP_ENOMEM. */
int sim_bucket_set(struct sim_world *w, int64_t workspace_id, int present, int64_t version);

/* Terminations: what each terminated (or terminating) instance held when it went. */
struct sim_term_record {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	enum sim_term_cause cause;
	int64_t at;
	int64_t workspace_id;      /* one record per container held; 0 if it held none */
	enum container_state state;
};
size_t sim_term_log(const struct sim_world *w, const struct sim_term_record **out);

/* Every stop and remove that took effect, and whether a good sync preceded it. */
struct sim_stop_record {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	int64_t workspace_id;
	int removed;               /* 0: stop, 1: remove */
	int synced;                /* files were in the bucket (a good sync preceded it, or clean) */
	int restore_failed;        /* sync-back was forbidden */
	int64_t at;
};
size_t sim_stop_log(const struct sim_world *w, const struct sim_stop_record **out);

/* Agent calls refused for a stale epoch (invariant 5), over the world's life. */
unsigned long sim_fence_refusals(const struct sim_world *w);
/* Mutations that took effect (cloud and agent), over the world's life. */
unsigned long sim_mutations(const struct sim_world *w);

#endif
