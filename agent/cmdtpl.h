/*
 * cmdtpl.h - command templates with placeholders, run through /bin/sh -c.
 *
 * A template is a shell command line such as
 *   aws s3 sync {dir} s3://{bucket}/{prefix} --delete
 * Each known placeholder {name} is replaced by its value quoted for the
 * shell ('...' with embedded quotes escaped), so a value can never inject
 * shell syntax; templates must not quote placeholders themselves. Text that
 * is not a known placeholder, and ${VAR} (the shell's), is copied as is.
 */
#ifndef SPINUP_AGENT_CMDTPL_H
#define SPINUP_AGENT_CMDTPL_H

#include <stddef.h>

#include "../model/err.h"
#include "../model/strbuf.h"

#define CMDTPL_MAX 4096  /* bytes of a template and of its expansion */

struct cmdtpl_var {
	const char *name;   /* "port", without braces */
	const char *value;
};

/* Expand tpl into out (appended). 0, SP_ELIMIT (too long) or SP_ENOMEM. */
int cmdtpl_expand(const char *tpl, const struct cmdtpl_var *vars, size_t nvars,
		  struct strbuf *out, struct err *e);

/*
 * Check that every {word} in tpl names one of the allowed placeholders
 * (names, NULL-terminated). 0 or SP_EINVAL naming the unknown one.
 */
int cmdtpl_check(const char *tpl, const char *const *names, struct err *e);

#endif
