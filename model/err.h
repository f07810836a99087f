/*
 * err.h - the project's error codes and the caller-owned error detail.
 *
 * Every fallible function returns int: 0 on success or a negative SP_E*
 * code. The code says what kind of failure it was, and so whether a retry
 * can help (sp_code_retryable) and who must act (sp_code_class). The human
 * detail goes into a caller-owned struct err passed last; the layer that
 * knows the cause writes it, the caller decides whether to log it.
 *
 * A NULL struct err is allowed everywhere: the detail is then dropped.
 * Messages follow the house style: lowercase, no trailing period, name the
 * object and the cause. Secrets never go into a message.
 */
#ifndef SPINUP_ERR_H
#define SPINUP_ERR_H

#include <stddef.h>

enum sp_code {
	SP_OK = 0,
	SP_ENOMEM = -1,       /* allocation failed */
	SP_EINVAL = -2,       /* bad input: manifest, row, argument, response field */
	SP_ENOTFOUND = -3,    /* the named thing does not exist */
	SP_ECONFLICT = -4,    /* exists already / owned by someone else */
	SP_EIO = -5,          /* transient I/O failure (connection reset, refused) */
	SP_ETIMEOUT = -6,     /* a network call ran out of time */
	SP_ETHROTTLED = -7,   /* the remote side asked us to slow down */
	SP_EDENIED = -8,      /* credentials or permissions refused: an operator must act */
	SP_EFENCED = -9,      /* our fencing epoch is stale: we are no longer leader */
	SP_ELIMIT = -10,      /* a named size or count limit was crossed */
	SP_EPROTO = -11,      /* the peer answered something we cannot parse */
	SP_EUNAVAIL = -12,    /* the peer is up but failing (HTTP 5xx, database down) */
	SP_EBUSY = -13,       /* try again next pass (ScalingActivityInProgress, lease held) */
	SP_ESCHEMA = -14,     /* database not migrated, or newer than this binary */
	SP_EINTERNAL = -15,   /* a bug of ours; never expected */
	SP_CODE_MIN = -15
};

/* Who must act when an error persists (DESIGN.md, "Status"). */
enum sp_class {
	SP_CLASS_NONE = 0,
	SP_CLASS_RETRYABLE,     /* back off with jitter and try again */
	SP_CLASS_NEEDS_USER,    /* bad image, bad template, bad manifest */
	SP_CLASS_NEEDS_OPERATOR,/* IAM denied, pool exhausted, schema missing */
	SP_CLASS_MAX
};

#define ERR_MSG_MAX 512

struct err {
	int code;
	char msg[ERR_MSG_MAX];
};

#define ERR_INIT { 0, { 0 } }

/* Symbolic name of a code ("EINVAL"), never NULL. */
const char *sp_code_name(int code);
/* Whether repeating the same call later can succeed. */
int sp_code_retryable(int code);
/* The error class for a code. */
enum sp_class sp_code_class(int code);
/* "Retryable", "NeedsUser", "NeedsOperator" (CamelCase, as in conditions). */
const char *sp_class_name(enum sp_class c);

/*
 * Record a failure: sets e->code and formats e->msg (truncated to fit).
 * Returns code so callers can write `return err_set(e, SP_EINVAL, ...)`.
 */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "context: old message". Returns e->code. */
int err_prefix(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

#endif
