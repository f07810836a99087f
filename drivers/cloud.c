#include "cloud.h"

#include <stdlib.h>

#include "../model/banned.h"

int cloud_set_protection(struct cloud *c, const char *asg, const char *const *ids, size_t n,
			 int protect, struct err *e)
{
	size_t off, batch;
	int rc = 0;

	for (off = 0; off < n && !rc; off += batch) {
		batch = n - off < CLOUD_PROTECT_BATCH ? n - off : CLOUD_PROTECT_BATCH;
		c->calls++;
		rc = c->ops->set_protection(c->state, asg, ids + off, batch, protect, e);
	}
	return rc;
}

void cloud_free(struct cloud *c)
{
	if (!c)
		return;
	if (c->ops && c->ops->free)
		c->ops->free(c->state);
	free(c);
}
