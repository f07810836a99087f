#include "cmdtpl.h"

#include <string.h>

#include "../model/banned.h"

static int add_quoted(struct strbuf *out, const char *v)
{
	int rc = strbuf_addch(out, '\'');

	for (; !rc && *v; v++)
		rc = *v == '\'' ? strbuf_addstr(out, "'\\''") : strbuf_addch(out, *v);
	if (!rc)
		rc = strbuf_addch(out, '\'');
	return rc;
}

/* The var named by the placeholder starting at p ('{'), or NULL; *len its length. */
static const struct cmdtpl_var *match(const char *p, const struct cmdtpl_var *vars, size_t n,
				      size_t *len)
{
	const char *close = strchr(p, '}');
	size_t i, k;

	if (!close)
		return NULL;
	k = (size_t)(close - p - 1);
	for (i = 0; i < n; i++) {
		if (strlen(vars[i].name) == k && !strncmp(p + 1, vars[i].name, k)) {
			*len = k + 2;
			return &vars[i];
		}
	}
	return NULL;
}

int cmdtpl_expand(const char *tpl, const struct cmdtpl_var *vars, size_t nvars,
		  struct strbuf *out, struct err *e)
{
	const struct cmdtpl_var *v;
	size_t start = out->len, len;
	int rc = 0;

	const char *begin = tpl;

	while (!rc && *tpl) {
		if (*tpl == '{' && (tpl == begin || tpl[-1] != '$') &&
		    (v = match(tpl, vars, nvars, &len)) != NULL) {
			rc = add_quoted(out, v->value ? v->value : "");
			tpl += len;
		} else {
			rc = strbuf_addch(out, *tpl++);
		}
		if (!rc && out->len - start > CMDTPL_MAX)
			rc = SP_ELIMIT;
	}
	if (rc == SP_ELIMIT)
		return err_set(e, rc, "command is longer than %d bytes after expansion", CMDTPL_MAX);
	if (rc)
		return err_set(e, rc, "out of memory expanding a command");
	return 0;
}

int cmdtpl_check(const char *tpl, const char *const *names, struct err *e)
{
	const char *p = tpl, *close;
	size_t i;

	if (strlen(tpl) > CMDTPL_MAX)
		return err_set(e, SP_ELIMIT, "command template is longer than %d bytes", CMDTPL_MAX);
	while ((p = strchr(p, '{')) != NULL) {
		int known = 0;

		close = strchr(p, '}');
		if (!close)
			break;
		if (p > tpl && p[-1] == '$') {  /* ${VAR} is the shell's */
			p = close + 1;
			continue;
		}
		for (i = 0; names[i]; i++)
			if (strlen(names[i]) == (size_t)(close - p - 1) &&
			    !strncmp(p + 1, names[i], (size_t)(close - p - 1)))
				known = 1;
		if (!known && close - p - 1 > 0 && !memchr(p + 1, ' ', (size_t)(close - p - 1)))
			return err_set(e, SP_EINVAL, "command template names unknown placeholder '%.*s'",
				       (int)(close - p + 1), p);
		p = close + 1;
	}
	return 0;
}
