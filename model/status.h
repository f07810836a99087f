/*
 * status.h - observed status of a workspace: conditions first, phase derived.
 *
 * Each workspace carries every condition in enum cond_type, set on first
 * visit, each with a status (True/False/Unknown), a CamelCase reason, a
 * message and a transition time. The phase people see is derived from the
 * conditions by status_derive_phase() (model/status.c); it is stored only so
 * the UI can read it without recomputing.
 *
 * Only the operator (holding the current fencing epoch) writes status.
 */
#ifndef SPINUP_STATUS_H
#define SPINUP_STATUS_H

#include <stdint.h>

#include "err.h"
#include "observed.h"

enum cond_type {
	COND_SCHEDULED,
	COND_INSTANCE_READY,
	COND_CONTAINER_READY,
	COND_FILES_RESTORED,
	COND_FILES_SYNCED,
	COND_READY,
	COND_MAX
};

enum cond_status { CSTAT_UNKNOWN, CSTAT_TRUE, CSTAT_FALSE, CSTAT_MAX };

enum ws_phase {
	PHASE_PENDING,
	PHASE_ALLOCATING_VM,
	PHASE_BOOTING_CONTAINER,
	PHASE_READY,
	PHASE_STOPPING,
	PHASE_STOPPED,
	PHASE_DELETING,
	PHASE_DELETED,
	PHASE_FAILED,
	PHASE_MAX
};

#define COND_REASON_MAX 63
#define COND_MESSAGE_MAX 255

struct condition {
	enum cond_status status;
	char reason[COND_REASON_MAX + 1];     /* CamelCase: "WaitingForCapacity" */
	char message[COND_MESSAGE_MAX + 1];
	int64_t last_transition;              /* ms */
};

struct workspace_status {
	int64_t workspace_id;
	int64_t observed_generation;
	enum ws_phase phase;
	struct condition conds[COND_MAX];
	char instance_id[OBS_INSTANCE_ID_MAX + 1];  /* placement, "" if none */
	char address[OBS_ADDR_MAX + 1];
	char url[256];
	enum sp_class error_class;            /* who must act, SP_CLASS_NONE if nobody */
	int attempts;                         /* consecutive failed attempts */
	int64_t next_attempt_at;              /* ms; backoff with jitter */
	int64_t phase_since;                  /* ms */
	int64_t reconcile_handled_at;         /* echo of workspace reconcile request */
	int64_t last_sync_at;                 /* ms; last good S3 sync */
	int restore_failed;                   /* sync-back forbidden until a good restore */
	int has_snapshot;                     /* a sync has succeeded at least once */
};

/* Names tables: "Scheduled", "True", "READY". */
const char *cond_type_name(enum cond_type t);
const char *cond_status_name(enum cond_status s);
const char *ws_phase_name(enum ws_phase p);
int cond_type_parse(const char *s, enum cond_type *out);
int cond_status_parse(const char *s, enum cond_status *out);
int ws_phase_parse(const char *s, enum ws_phase *out);

/* A fresh status: every condition Unknown with reason "NotYetObserved" at now. */
void workspace_status_init(struct workspace_status *st, int64_t workspace_id, int64_t now);

/*
 * Set one condition. The transition time changes only when status changes.
 * Returns 1 if anything (status, reason, message) changed, else 0.
 */
int status_set_cond(struct workspace_status *st, enum cond_type t, enum cond_status s,
		    const char *reason, const char *message, int64_t now);

/* Whether two statuses differ in anything worth writing (invariant 8). */
int workspace_status_differs(const struct workspace_status *a, const struct workspace_status *b);

#endif
