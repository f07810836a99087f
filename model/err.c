#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "banned.h"

static const char *const code_names[] = {
	"OK", "ENOMEM", "EINVAL", "ENOTFOUND", "ECONFLICT", "EIO", "ETIMEOUT",
	"ETHROTTLED", "EDENIED", "EFENCED", "ELIMIT", "EPROTO", "EUNAVAIL",
	"EBUSY", "ESCHEMA", "EINTERNAL",
};

const char *sp_code_name(int code)
{
	if (code > 0 || code < SP_CODE_MIN)
		return "EUNKNOWN";
	return code_names[-code];
}

int sp_code_retryable(int code)
{
	switch (code) {
	case SP_ENOMEM:
	case SP_EIO:
	case SP_ETIMEOUT:
	case SP_ETHROTTLED:
	case SP_EUNAVAIL:
	case SP_EBUSY:
	case SP_EPROTO:
		return 1;
	default:
		return 0;
	}
}

enum sp_class sp_code_class(int code)
{
	if (code == 0)
		return SP_CLASS_NONE;
	switch (code) {
	case SP_EINVAL:
	case SP_ENOTFOUND:
	case SP_ECONFLICT:
	case SP_ELIMIT:
		return SP_CLASS_NEEDS_USER;
	case SP_EDENIED:
	case SP_ESCHEMA:
	case SP_EINTERNAL:
		return SP_CLASS_NEEDS_OPERATOR;
	default:
		return SP_CLASS_RETRYABLE;
	}
}

const char *sp_class_name(enum sp_class c)
{
	static const char *const names[SP_CLASS_MAX] = {
		"None", "Retryable", "NeedsUser", "NeedsOperator",
	};
	if ((int)c < 0 || c >= SP_CLASS_MAX)
		return "Unknown";
	return names[c];
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return 0;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old);
	return e->code;
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}
